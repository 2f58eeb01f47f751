//! `sgpolicy status`'s pure side: a `/status.json` document (from any daemon, so untrusted: every
//! field may be missing or of another type) filtered as the page filters it, and printed as the
//! page's header and table for a terminal, every value escaped (`crate::escape::text`) so a group
//! name or a user name can neither add a line nor send an escape sequence.

use crate::escape;
use serde_json::Value;
use std::fmt::Write;

/// The page's filters; `None` matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// `in-sync`, `drifted`, `held`, `failing` or `unknown`.
    pub state: Option<String>,
    /// The account id (`""` is the default account).
    pub account: Option<String>,
    pub region: Option<String>,
    /// A policy file: its path as the daemon names it, or the path's last components
    /// (`prod.yaml`, `team-a/prod.yaml`), since the daemon's folder is usually not where the
    /// command runs.
    pub file: Option<String>,
}

/// The states a group can be in, as `--state` accepts them.
pub const STATES: [&str; 5] = ["in-sync", "drifted", "held", "failing", "unknown"];

/// Why a document is not a status document this command can read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadDocument {
    #[error("the answer is not a status document (no \"groups\" list)")]
    NoGroups,
    #[error("the status document is version {0}; this sgpolicy reads version 1")]
    Version(String),
}

/// A group's file: its `source` without the `:line:column` the page also strips.
fn file_of(g: &Value) -> &str {
    let source = g["source"].as_str().unwrap_or("");
    let mut cut = source;
    for _ in 0..2 {
        match cut.rsplit_once(':') {
            Some((head, tail)) if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => {
                cut = head
            }
            _ => break,
        }
    }
    cut
}

impl Filter {
    pub fn matches(&self, g: &Value) -> bool {
        let is = |want: &Option<String>, key: &str| {
            want.as_deref().map_or(true, |w| g[key].as_str() == Some(w))
        };
        let file = self.file.as_deref().map_or(true, |want| {
            let have = file_of(g);
            have == want || have.ends_with(&format!("/{}", want.trim_start_matches("./")))
        });
        is(&self.state, "state")
            && is(&self.account, "account")
            && is(&self.region, "region")
            && file
    }
}

/// `doc` with only the groups `filter` matches (the summary stays the daemon's, of every group).
pub fn filtered(mut doc: Value, filter: &Filter) -> Result<Value, BadDocument> {
    match &doc["version"] {
        Value::Number(n) if n.as_u64() == Some(1) => {}
        other => return Err(BadDocument::Version(other.to_string())),
    }
    let groups = doc
        .get_mut("groups")
        .and_then(Value::as_array_mut)
        .ok_or(BadDocument::NoGroups)?;
    groups.retain(|g| filter.matches(g));
    Ok(doc)
}

/// A JSON value as one escaped cell: strings as they are, `null`/absent as `-`.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => escape::text(s).into_owned(),
        other => escape::text(&other.to_string()).into_owned(),
    }
}

fn number(v: &Value) -> String {
    match v.as_f64() {
        Some(n) if n.fract() == 0.0 => format!("{n:.0}"),
        Some(n) => format!("{n}"),
        None => "-".into(),
    }
}

/// `changedBy` as "type name" (the page's `who`).
fn who(changed_by: &Value) -> String {
    let parts: Vec<String> = ["type", "name"]
        .iter()
        .filter_map(|k| changed_by[*k].as_str().filter(|s| !s.is_empty()))
        .map(|s| escape::text(s).into_owned())
        .collect();
    parts.join(" ")
}

fn last_correction(c: &Value) -> String {
    if c.is_null() {
        return "-".into();
    }
    let by = who(&c["changedBy"]);
    match by.is_empty() {
        true => format!("{} ({})", cell(&c["time"]), cell(&c["cause"])),
        false => format!("{} ({}, {by})", cell(&c["time"]), cell(&c["cause"])),
    }
}

fn isolation(i: &Value) -> String {
    match i {
        Value::Null => "not checked".into(),
        i => cell(&i["status"]),
    }
}

/// The header: the page's summary cards and meta line, one fact per line.
fn header(doc: &Value) -> String {
    let s = &doc["summary"];
    let mut out = String::new();
    let commit = match &doc["commit"] {
        Value::Null => String::new(),
        c => format!(" (commit {})", cell(c)),
    };
    let _ = writeln!(
        out,
        "revision {}{commit}, {}",
        cell(&doc["revision"]),
        cell(&s["shard"])
    );
    let h = &s["heldBy"];
    let _ = writeln!(
        out,
        "groups: {} governed, {} in sync, {} drifted, {} held (open {}, max-changes {}, observe {}, fight {}), {} failing, {} not read yet",
        number(&s["governed"]), number(&s["inSync"]), number(&s["drifted"]), number(&s["held"]),
        number(&h["open"]), number(&h["max-changes"]), number(&h["observe"]), number(&h["fight"]),
        number(&s["failing"]), number(&s["unknown"]),
    );
    let _ = writeln!(
        out,
        "isolation: {} not isolated, {} unknown; ungoverned: {}",
        number(&s["notIsolated"]),
        number(&s["isolationUnknown"]),
        number(&s["ungoverned"])
    );
    let v = &s["verification"];
    let beyond = match v["beyondPromise"] {
        Value::Bool(true) => " BEYOND THE PROMISE",
        _ => "",
    };
    let _ = writeln!(
        out,
        "oldest verification: {}s ago (promise {}s){beyond}",
        number(&v["ageSeconds"]),
        number(&v["promiseSeconds"])
    );
    let p = &s["lastPass"];
    let pass = match p {
        Value::Null => "-".to_string(),
        p => format!(
            "{} {}, {}, {}s",
            cell(&p["time"]),
            cell(&p["trigger"]),
            cell(&p["outcome"]),
            number(&p["durationSeconds"])
        ),
    };
    let _ = writeln!(out, "last pass: {pass}");
    let _ = writeln!(out, "events: {}", events(&s["events"]));
    out
}

/// Each event source's health: `pull unavailable: why; push off`.
fn events(sources: &Value) -> String {
    let sources: Vec<String> = sources
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, e)| match &e["reason"] {
                    Value::Null => format!("{} {}", escape::text(k), cell(&e["state"])),
                    r => format!("{} {}: {}", escape::text(k), cell(&e["state"]), cell(r)),
                })
                .collect()
        })
        .unwrap_or_default();
    sources.join("; ")
}

const COLUMNS: [&str; 12] = [
    "ID",
    "NAME",
    "ACCOUNT",
    "REGION",
    "DECLARED",
    "OBSERVED",
    "MODE",
    "STATE",
    "LAST VERIFIED",
    "LAST CORRECTION",
    "ISOLATION",
    "SOURCE",
];

fn row(g: &Value) -> [String; 12] {
    [
        cell(&g["id"]),
        cell(&g["name"]),
        cell(&g["account"]),
        cell(&g["region"]),
        cell(&g["declared"]),
        cell(&g["observed"]),
        cell(&g["mode"]),
        cell(&g["state"]),
        cell(&g["lastVerified"]),
        last_correction(&g["lastCorrection"]),
        isolation(&g["isolation"]),
        cell(&g["source"]),
    ]
}

/// The header, then the groups of `doc` as a table, then how many of the governed groups it shows.
pub fn text(doc: &Value) -> String {
    let mut out = header(doc);
    let groups: &[Value] = doc["groups"].as_array().map_or(&[], Vec::as_slice);
    let cells: Vec<[String; 12]> = groups.iter().map(row).collect();
    let mut widths = COLUMNS.map(str::len);
    for r in &cells {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: &[String]| {
        let mut s = String::new();
        for (i, c) in cols.iter().enumerate() {
            let _ = write!(s, "{:<w$}  ", c, w = widths[i]);
        }
        s.trim_end().to_string() + "\n"
    };
    out.push('\n');
    if !cells.is_empty() {
        out.push_str(&line(&COLUMNS.map(String::from)));
        for r in &cells {
            out.push_str(&line(r));
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{} of {} governed groups",
        cells.len(),
        number(&doc["summary"]["governed"])
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "version": 1, "revision": "3f2a9c1b7d4e", "commit": null,
            "summary": {"governed": 3, "inSync": 1, "drifted": 0, "held": 1,
                        "heldBy": {"open": 1, "max-changes": 0, "observe": 0, "fight": 0},
                        "failing": 1, "unknown": 0, "notIsolated": 1, "isolationUnknown": 0,
                        "ungoverned": null,
                        "verification": {"oldest": "2026-12-07T10:00:00Z", "ageSeconds": 700.0,
                                         "promiseSeconds": 640.0, "beyondPromise": true},
                        "events": {"pull": {"state": "unavailable", "reason": "403\n\u{1b}[2J"},
                                   "push": {"state": "off", "reason": null}},
                        "shard": "shard 0 of 1", "lastPass": null},
            "groups": [
                {"account": "", "region": "cn-hangzhou", "id": "sg-a", "name": "web\n\u{1b}[31mFAKE",
                 "declared": "Drop", "observed": "Drop", "mode": "enforce", "state": "in-sync",
                 "lastVerified": "2026-12-07T10:05:00Z",
                 "lastCorrection": {"time": "2026-12-07T10:02:00Z", "cause": "event",
                                    "changedBy": {"type": "ram-user", "name": "alice\u{202e}txt"}},
                 "isolation": {"status": "not-isolated", "members": 2, "paths": [], "unknown": []},
                 "source": "/policies/team-a/prod.yaml:3:5"},
                {"account": "", "region": "cn-shanghai", "id": "sg-b", "name": null,
                 "declared": "Drop", "observed": "Accept", "mode": "enforce", "state": "held",
                 "lastVerified": null, "lastCorrection": null, "isolation": null,
                 "source": "/policies/prod.yaml:7:5"},
                {"account": "1234", "region": "cn-hangzhou", "id": "sg-c", "name": null,
                 "declared": "Accept", "observed": null, "mode": "observe", "state": "failing",
                 "lastVerified": null, "lastCorrection": null, "isolation": null,
                 "source": "/policies/team-a/prod.yaml:9:5"},
            ],
        })
    }

    fn ids(doc: &Value) -> Vec<&str> {
        doc["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn each_filter_keeps_only_matching_groups_and_a_file_matches_by_its_trailing_components() {
        let by = |f: Filter| filtered(doc(), &f).expect("version 1");
        let some = |s: &str| Some(s.to_string());
        assert_eq!(ids(&by(Filter::default())), ["sg-a", "sg-b", "sg-c"]);
        assert_eq!(
            ids(&by(Filter {
                state: some("held"),
                ..Filter::default()
            })),
            ["sg-b"]
        );
        assert_eq!(
            ids(&by(Filter {
                account: some(""),
                ..Filter::default()
            })),
            ["sg-a", "sg-b"]
        );
        assert_eq!(
            ids(&by(Filter {
                region: some("cn-hangzhou"),
                ..Filter::default()
            })),
            ["sg-a", "sg-c"]
        );
        assert_eq!(
            ids(&by(Filter {
                file: some("team-a/prod.yaml"),
                ..Filter::default()
            })),
            ["sg-a", "sg-c"]
        );
        assert_eq!(
            ids(&by(Filter {
                file: some("prod.yaml"),
                ..Filter::default()
            })),
            ["sg-a", "sg-b", "sg-c"],
            "every file named prod.yaml"
        );
        assert_eq!(
            ids(&by(Filter {
                file: some("/policies/prod.yaml"),
                ..Filter::default()
            })),
            ["sg-b"]
        );
        assert_eq!(
            ids(&by(Filter {
                region: some("cn-hangzhou"),
                state: some("failing"),
                ..Filter::default()
            })),
            ["sg-c"]
        );
        let filtered_doc = by(Filter {
            state: some("held"),
            ..Filter::default()
        });
        assert_eq!(
            filtered_doc["summary"]["governed"], 3,
            "the summary is the daemon's"
        );
    }

    #[test]
    fn another_version_or_no_groups_is_refused() {
        let mut v2 = doc();
        v2["version"] = json!(2);
        assert_eq!(
            filtered(v2, &Filter::default()),
            Err(BadDocument::Version("2".into()))
        );
        assert_eq!(
            filtered(json!({"version": 1}), &Filter::default()),
            Err(BadDocument::NoGroups)
        );
        assert!(filtered(json!("<html>"), &Filter::default()).is_err());
    }

    #[test]
    fn the_table_shows_the_header_and_every_column_with_untrusted_text_escaped() {
        let out = text(&doc());
        for line in [
            "revision 3f2a9c1b7d4e, shard 0 of 1",
            "groups: 3 governed, 1 in sync, 0 drifted, 1 held (open 1, max-changes 0, observe 0, fight 0), 1 failing, 0 not read yet",
            "isolation: 1 not isolated, 0 unknown; ungoverned: -",
            "oldest verification: 700s ago (promise 640s) BEYOND THE PROMISE",
            "last pass: -",
            "events: pull unavailable: 403\\n\\u{1b}[2J; push off",
            "3 of 3 governed groups",
        ] {
            assert!(out.lines().any(|l| l == line), "no line {line:?} in:\n{out}");
        }
        let sg_a = out
            .lines()
            .find(|l| l.starts_with("sg-a "))
            .expect("sg-a's row");
        for cell in [
            "web\\n\\u{1b}[31mFAKE",
            "2026-12-07T10:02:00Z (event, ram-user alice\\u{202e}txt)",
            "not-isolated",
            "/policies/team-a/prod.yaml:3:5",
        ] {
            assert!(sg_a.contains(cell), "{cell:?} not in {sg_a:?}");
        }
        assert!(
            !out.chars().any(|c| c == '\u{1b}' || c == '\u{202e}'),
            "{out}"
        );
        assert_eq!(out.lines().filter(|l| l.starts_with("sg-")).count(), 3);
        let sg_b = out
            .lines()
            .find(|l| l.starts_with("sg-b "))
            .expect("sg-b's row");
        assert!(
            sg_b.contains("not checked") && sg_b.contains("held"),
            "{sg_b}"
        );
    }
}
