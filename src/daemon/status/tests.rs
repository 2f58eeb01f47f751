//! The status data: `/status.json` as issue 21 fixes it, and the per-group history's bounds.

use super::*;
use crate::events::{ActorType, EventType};
use chrono::TimeZone;

fn at(min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 10, min, 0).unwrap()
}

fn alice() -> Arc<Author> {
    Arc::new(Author {
        actor: ActorType::RamUser,
        name: Some("<script>alice</script>".into()),
        principal_id: Some("2001".into()),
        event_type: EventType::ConsoleOperation,
        source_ip: None,
        user_agent: None,
        event_time: None,
        event_id: "ev-1".into(),
        set_to: None,
        via: None,
    })
}

/// A governed group row, in sync and never corrected.
fn row(id: &str) -> Row {
    Row {
        account: String::new(),
        region: "cn-hangzhou".into(),
        id: id.into(),
        name: None,
        declared: "Drop",
        observed: Some("Drop"),
        mode: "enforce",
        state: State::InSync,
        hold: None,
        last_verified: Some(at(1)),
        last_correction: None,
        isolation: Value::Null,
        source: "prod.yaml:3:5".into(),
    }
}

fn key(id: &str) -> Key {
    (String::new(), "cn-hangzhou".into(), id.into())
}

fn entry(what: &'static str, detail: &str, min: u32) -> Entry {
    Entry {
        time: at(min),
        what,
        detail: detail.into(),
        changed_by: None,
        cause: None,
    }
}

#[test]
fn status_json_is_version_1_with_each_group_as_the_issue_fixes_it_and_its_last_correction() {
    let board = Board::default();
    board.record(
        key("sg-a"),
        Entry {
            changed_by: Some(alice()),
            cause: Some("event"),
            ..entry("corrected", "Accept → Drop", 2)
        },
    );
    let held = Row {
        state: State::Held,
        hold: Some("open"),
        observed: Some("Accept"),
        ..row("sg-b")
    };
    board.publish(Snapshot {
        revision: Some("3f2a9c1b7d4e".into()),
        shard: "shard 0 of 1".into(),
        rows: vec![row("sg-a"), held],
        ..Snapshot::default()
    });
    let v = board.json(at(10));
    assert_eq!(v["version"], 1);
    assert_eq!(v["revision"], "3f2a9c1b7d4e");
    assert_eq!(v["commit"], Value::Null);
    assert_eq!(
        (
            &v["summary"]["governed"],
            &v["summary"]["held"],
            &v["summary"]["heldBy"]["open"]
        ),
        (&json!(2), &json!(1), &json!(1))
    );
    assert_eq!(
        v["groups"][0],
        json!({
            "account": "", "region": "cn-hangzhou", "id": "sg-a", "name": null,
            "declared": "Drop", "observed": "Drop", "mode": "enforce", "state": "in-sync",
            "lastVerified": "2026-12-07T10:01:00Z",
            "lastCorrection": {"time": "2026-12-07T10:02:00Z", "cause": "event",
                               "changedBy": crate::report::author_json(&alice())},
            "isolation": null, "source": "prod.yaml:3:5",
        })
    );
    assert_eq!(v["groups"][1]["state"], "held");
    assert_eq!(v["groups"][1]["lastCorrection"], Value::Null);
}

#[test]
fn a_group_keeps_its_last_20_entries_and_a_hold_repeated_every_pass_is_one_entry() {
    let board = Board::default();
    for _ in 0..3 {
        board.record(
            key("sg-a"),
            entry("held", "Accept → Drop held back (open)", 0),
        );
    }
    assert_eq!(board.history(&key("sg-a")).len(), 1);
    for m in 1..=30 {
        board.record(key("sg-a"), entry("corrected", "Accept → Drop", m));
    }
    let h = board.history(&key("sg-a"));
    assert_eq!(h.len(), HISTORY);
    assert_eq!(
        (h[0].time, h[HISTORY - 1].time),
        (at(11), at(30)),
        "the newest kept"
    );
}

#[test]
fn a_group_no_longer_governed_loses_its_history() {
    let board = Board::default();
    board.record(key("sg-gone"), entry("corrected", "Accept → Drop", 1));
    board.publish(Snapshot {
        rows: vec![row("sg-a")],
        ..Snapshot::default()
    });
    assert!(board.history(&key("sg-gone")).is_empty());
    assert_eq!(group_json(&board.snapshot(), &board, &key("sg-gone")), None);
}

#[test]
fn the_page_script_builds_markup_from_text_only() {
    for sink in [
        "innerHTML =",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!page::JS.contains(sink), "status.js uses {sink}");
    }
    assert!(page::JS.contains("textContent"));
}

#[test]
fn the_oldest_verification_is_measured_against_the_interval_the_sweeps_margin_and_the_last_full_pass(
) {
    let board = Board::default();
    board.publish(Snapshot {
        oldest_verification: Some(at(0)),
        interval: Duration::from_secs(600),
        rows: vec![row("sg-a")],
        ..Snapshot::default()
    });
    let v = board.json(at(11));
    assert_eq!(
        v["summary"]["verification"],
        json!({"oldest": "2026-12-07T10:00:00Z", "ageSeconds": 660.0,
               "promiseSeconds": null, "beyondPromise": null}),
        "no full pass yet: the promise is unknown, never kept"
    );
    let pass = |secs: u64, trigger: &'static str| LastPass {
        time: at(11),
        trigger,
        outcome: "success",
        duration: Duration::from_secs(secs),
    };
    board.pass_finished(pass(20, "startup"), true);
    let verification = |b: &Board| b.json(at(11))["summary"]["verification"].clone();
    assert_eq!(
        (
            &verification(&board)["promiseSeconds"],
            &verification(&board)["beyondPromise"]
        ),
        (&json!(625.0), &json!(true)),
        "600 s + the sweep's 5 s + a 20 s pass, and 660 s is beyond it"
    );
    board.pass_finished(pass(500, "signal"), true);
    board.pass_finished(pass(500, "event"), false);
    assert_eq!(
        (
            &verification(&board)["promiseSeconds"],
            &verification(&board)["beyondPromise"]
        ),
        (&json!(1105.0), &json!(false)),
        "only a full pass sets the promise: the sweep pauses while it runs"
    );
    assert_eq!(
        board.json(at(11))["summary"]["lastPass"],
        json!({"time": "2026-12-07T10:11:00Z", "trigger": "event", "outcome": "success",
               "durationSeconds": 500.0})
    );
}

#[test]
fn ungoverned_is_null_until_a_survey_and_each_event_source_says_why_it_is_unavailable() {
    let board = Board::default();
    let events = Arc::new(crate::events::Status::new());
    events.turn_on(crate::events::Via::Pull);
    let bucket = crate::model::GroupKey::new("cn-hangzhou", "sg-a").bucket();
    events.bucket_failed(&bucket, "Forbidden.RAM: no actiontrail:LookupEvents".into());
    board.publish(Snapshot {
        events: Some(events),
        rows: vec![row("sg-a")],
        ..Snapshot::default()
    });
    let summary = |b: &Board| b.json(at(1))["summary"].clone();
    assert_eq!(summary(&board)["ungoverned"], Value::Null);
    board.surveyed(14);
    assert_eq!(summary(&board)["ungoverned"], 14);
    assert_eq!(
        summary(&board)["events"]["push"],
        json!({"state": "off", "reason": null})
    );
    assert_eq!(summary(&board)["events"]["pull"]["state"], "unavailable");
    assert!(
        summary(&board)["events"]["pull"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("actiontrail:LookupEvents")),
        "{}",
        summary(&board)
    );
}
