//! The status page's data (`--status-addr`, issue 21): what the daemon knows about each governed
//! group, published by the passes as an immutable [`Snapshot`] the HTTP handlers (`page`) read
//! without ever waiting on a pass, and a bounded history per group (corrections, holds, fights,
//! isolation changes) kept beside the fold's records.
//!
//! `/status.json` is `version` 1 exactly as the issue fixes it; `changedBy` and `isolation` are the
//! JSON report's own objects (`report::author_json`, `report::isolation::json`). Everything that
//! depends on the time of the request (the oldest verification's age against its promise, the
//! event sources' health) is computed when the document is built, from a `now` the caller passes.

pub mod auth;
pub mod fetch;
pub mod page;
pub mod table;

use crate::events::status::Availability;
use crate::events::{Author, Via};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Entries of history kept per group: enough for "who keeps flipping it", bounded for 10,000 groups.
pub const HISTORY: usize = 20;

/// A group's state as the page and `/status.json` name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    InSync,
    Drifted,
    Held,
    Failing,
    /// Declared, not read yet.
    Unknown,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::InSync => "in-sync",
            State::Drifted => "drifted",
            State::Held => "held",
            State::Failing => "failing",
            State::Unknown => "unknown",
        }
    }
}

/// A group's last correction.
#[derive(Clone, Debug)]
pub struct LastCorrection {
    pub time: DateTime<Utc>,
    /// What found the drift: `resync`, `file` or `event`.
    pub cause: &'static str,
    pub changed_by: Option<Arc<Author>>,
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Row {
    pub account: String,
    pub region: String,
    pub id: String,
    /// As the last listing that named the group returned it (untrusted text).
    pub name: Option<Arc<str>>,
    pub declared: &'static str,
    pub observed: Option<&'static str>,
    pub mode: &'static str,
    pub state: State,
    /// The rail that held its drift (`open`, `max-changes`, `observe`, `fight`), when held.
    pub hold: Option<&'static str>,
    pub last_verified: Option<DateTime<Utc>>,
    pub last_correction: Option<LastCorrection>,
    /// The report's `isolation` object (`null` where the daemon did not check it).
    pub isolation: Value,
    pub source: String,
}

/// Everything `/status` shows of the governed groups, as of the last fold.
#[derive(Clone, Default)]
pub struct Snapshot {
    pub revision: Option<String>,
    pub commit: Option<String>,
    pub shard: String,
    /// When the oldest successful read of any governed group was made (never read: the daemon's
    /// start), as `sgpolicy_oldest_verification_age_seconds` counts it.
    pub oldest_verification: Option<DateTime<Utc>>,
    /// `--interval`: the verification promise is the interval, plus the sweep's margin
    /// ([`crate::daemon::sweep::AGE_MARGIN`]), plus the last full pass (see `verification_json`).
    pub interval: Duration,
    /// The event sources, read when the document is built (their health changes between passes).
    pub events: Option<Arc<crate::events::Status>>,
    pub rows: Vec<Row>,
}

/// One entry of a group's history.
#[derive(Clone, Debug)]
pub struct Entry {
    pub time: DateTime<Utc>,
    /// `corrected`, `held`, `fight-started`, `fight-ended`, `isolation-lost`, `isolation-restored`.
    pub what: &'static str,
    pub detail: String,
    pub changed_by: Option<Arc<Author>>,
    /// For a correction: what found the drift (`resync`, `file`, `event`); it becomes the group's
    /// `lastCorrection`.
    pub cause: Option<&'static str>,
}

/// A pass as the header shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastPass {
    pub time: DateTime<Utc>,
    /// `startup`, `file`, `interval`, `signal`, `retry` or `event`.
    pub trigger: &'static str,
    /// `success`, `group_errors`, `folder_error` or `cloud_error` (`sgpolicy_passes_total`'s).
    pub outcome: &'static str,
    pub duration: Duration,
}

/// What the passes say besides the snapshot: the last pass, the last full pass that read the
/// cloud (its duration is part of the promise), and the last coverage survey.
#[derive(Clone, Debug, Default)]
pub struct Passes {
    pub last: Option<LastPass>,
    pub last_full: Option<Duration>,
    /// Ungoverned groups found by the last survey; `None` before one (or with
    /// `--no-report-ungoverned`).
    pub ungoverned: Option<usize>,
}

/// (account, region, id): how the page names a group.
pub type Key = (String, String, String);

/// What the passes publish and the page reads: the latest snapshot, and each group's history.
#[derive(Default)]
pub struct Board {
    snapshot: Mutex<Arc<Snapshot>>,
    history: Mutex<BTreeMap<Key, VecDeque<Entry>>>,
    corrections: Mutex<BTreeMap<Key, LastCorrection>>,
    passes: Mutex<Passes>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn key_of(r: &Row) -> Key {
    (r.account.clone(), r.region.clone(), r.id.clone())
}

impl Board {
    pub fn snapshot(&self) -> Arc<Snapshot> {
        lock(&self.snapshot).clone()
    }

    pub fn passes(&self) -> Passes {
        lock(&self.passes).clone()
    }

    /// Replaces the snapshot; rows gain their last correction from the history kept here, and
    /// groups no longer governed lose their history.
    pub fn publish(&self, mut s: Snapshot) {
        let mut corrections = lock(&self.corrections);
        for r in &mut s.rows {
            r.last_correction = corrections.get(&key_of(r)).cloned();
        }
        let keys: BTreeSet<Key> = s.rows.iter().map(key_of).collect();
        corrections.retain(|k, _| keys.contains(k));
        drop(corrections);
        lock(&self.history).retain(|k, _| keys.contains(k));
        *lock(&self.snapshot) = Arc::new(s);
    }

    /// A pass finished; `full` when it was a full pass that read the cloud (the promise's).
    pub fn pass_finished(&self, pass: LastPass, full: bool) {
        let mut p = lock(&self.passes);
        if full {
            p.last_full = Some(pass.duration);
        }
        p.last = Some(pass);
    }

    /// A coverage survey found `ungoverned` groups.
    pub fn surveyed(&self, ungoverned: usize) {
        lock(&self.passes).ungoverned = Some(ungoverned);
    }

    /// Adds `e` to `key`'s history, unless it repeats the last entry (a hold on every pass is one
    /// entry until something else happens).
    pub fn record(&self, key: Key, e: Entry) {
        if let Some(cause) = e.cause {
            lock(&self.corrections).insert(
                key.clone(),
                LastCorrection {
                    time: e.time,
                    cause,
                    changed_by: e.changed_by.clone(),
                },
            );
        }
        let mut h = lock(&self.history);
        let q = h.entry(key).or_default();
        if q.back()
            .is_some_and(|last| last.what == e.what && last.detail == e.detail && e.what == "held")
        {
            return;
        }
        if q.len() == HISTORY {
            q.pop_front();
        }
        q.push_back(e);
    }

    pub fn history(&self, key: &Key) -> Vec<Entry> {
        lock(&self.history)
            .get(key)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// `/status.json` as of `now`.
    pub fn json(&self, now: DateTime<Utc>) -> Value {
        json(&self.snapshot(), &self.passes(), now)
    }
}

fn row_json(r: &Row) -> Value {
    json!({
        "account": r.account,
        "region": r.region,
        "id": r.id,
        "name": r.name.as_deref(),
        "declared": r.declared,
        "observed": r.observed,
        "mode": r.mode,
        "state": r.state.as_str(),
        "lastVerified": r.last_verified.as_ref().map(time),
        "lastCorrection": r.last_correction.as_ref().map(|c| json!({
            "time": time(&c.time),
            "cause": c.cause,
            "changedBy": c.changed_by.as_deref().map(crate::report::author_json),
        })),
        "isolation": r.isolation,
        "source": r.source,
    })
}

/// One event source's health: `{"state": "off" | "ok" | "unavailable", "reason": … | null}`.
fn source_json(a: Availability) -> Value {
    match a {
        Availability::Off => json!({"state": "off", "reason": null}),
        Availability::Ok => json!({"state": "ok", "reason": null}),
        Availability::Unavailable(why) => json!({"state": "unavailable", "reason": why}),
    }
}

fn seconds(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// The oldest verification against its promise, the bound `SgpolicyVerificationBeyondPromise` alerts
/// on: `--interval` plus the sweep's margin (docs/events.md), plus the last full pass, because the
/// sweep pauses while a pass that reads every group (SIGHUP, a retry) runs, and the group read
/// longest ago may be that pass's last read. Unknown until a full pass (the start-up pass) finished.
fn verification_json(s: &Snapshot, p: &Passes, now: DateTime<Utc>) -> Value {
    let age = s
        .oldest_verification
        .map(|t| (now - t).to_std().unwrap_or_default());
    let promise = p
        .last_full
        .map(|full| s.interval + crate::daemon::sweep::AGE_MARGIN + full);
    json!({
        "oldest": s.oldest_verification.as_ref().map(time),
        "ageSeconds": age.map(seconds),
        "promiseSeconds": promise.map(seconds),
        "beyondPromise": age.zip(promise).map(|(a, p)| a > p),
    })
}

fn summary_json(s: &Snapshot, p: &Passes, now: DateTime<Utc>) -> Value {
    let count = |st: State| s.rows.iter().filter(|r| r.state == st).count();
    let held = |rail: &str| s.rows.iter().filter(|r| r.hold == Some(rail)).count();
    let iso = |status: &str| {
        s.rows
            .iter()
            .filter(|r| r.isolation["status"] == status)
            .count()
    };
    let events: serde_json::Map<String, Value> = [Via::Pull, Via::Push]
        .into_iter()
        .map(|v| {
            let a = s
                .events
                .as_ref()
                .map_or(Availability::Off, |e| e.availability(v));
            (v.label().to_string(), source_json(a))
        })
        .collect();
    json!({
        "governed": s.rows.len(),
        "inSync": count(State::InSync),
        "drifted": count(State::Drifted),
        "held": count(State::Held),
        "heldBy": {"open": held("open"), "max-changes": held("max-changes"),
                   "observe": held("observe"), "fight": held("fight")},
        "failing": count(State::Failing),
        "unknown": count(State::Unknown),
        "notIsolated": iso("not-isolated"),
        "isolationUnknown": iso("unknown"),
        "ungoverned": p.ungoverned,
        "verification": verification_json(s, p, now),
        "events": events,
        "shard": s.shard,
        "lastPass": p.last.as_ref().map(|l| json!({
            "time": time(&l.time),
            "trigger": l.trigger,
            "outcome": l.outcome,
            "durationSeconds": seconds(l.duration),
        })),
    })
}

/// `/status.json`.
pub fn json(s: &Snapshot, p: &Passes, now: DateTime<Utc>) -> Value {
    json!({
        "version": 1,
        "revision": s.revision,
        "commit": s.commit,
        "summary": summary_json(s, p, now),
        "groups": s.rows.iter().map(row_json).collect::<Vec<_>>(),
    })
}

/// One group's page data: its row and its history, newest first.
pub fn group_json(s: &Snapshot, board: &Board, key: &Key) -> Option<Value> {
    let row = s
        .rows
        .iter()
        .find(|r| (&r.account, &r.region, &r.id) == (&key.0, &key.1, &key.2))?;
    let history: Vec<Value> = board
        .history(key)
        .iter()
        .rev()
        .map(|e| {
            json!({
                "time": time(&e.time),
                "what": e.what,
                "detail": e.detail,
                "changedBy": e.changed_by.as_deref().map(crate::report::author_json),
            })
        })
        .collect();
    Some(json!({"group": row_json(row), "history": history}))
}

#[cfg(test)]
mod tests;
