//! The status page's data (`--status-addr`, issue 21): what the daemon knows about each governed
//! group, published by the passes as an immutable [`Snapshot`] the HTTP handlers (`page`) read
//! without ever waiting on a pass, and a bounded history per group (corrections, holds, fights,
//! isolation changes) kept beside the fold's records.
//!
//! `/status.json` is `version` 1 exactly as the issue fixes it; `changedBy` and `isolation` are the
//! JSON report's own objects (`report::author_json`, `report::isolation::json`).

pub mod page;

use crate::events::Author;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

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

/// Everything `/status` shows, as of the last pass.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub revision: Option<String>,
    pub commit: Option<String>,
    pub shard: String,
    pub last_pass: Option<DateTime<Utc>>,
    /// Seconds since the oldest successful read of any governed group.
    pub oldest_verification: Option<DateTime<Utc>>,
    /// Each event source (`pull`, `push`): `off`, `ok` or `unavailable: why`.
    pub events: BTreeMap<&'static str, String>,
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

/// (account, region, id): how the page names a group.
pub type Key = (String, String, String);

/// What the passes publish and the page reads: the latest snapshot, and each group's history.
#[derive(Debug, Default)]
pub struct Board {
    snapshot: Mutex<Arc<Snapshot>>,
    history: Mutex<BTreeMap<Key, VecDeque<Entry>>>,
    corrections: Mutex<BTreeMap<Key, LastCorrection>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Board {
    pub fn snapshot(&self) -> Arc<Snapshot> {
        lock(&self.snapshot).clone()
    }

    /// Replaces the snapshot; rows gain their last correction from the history kept here, and
    /// groups no longer governed lose their history.
    pub fn publish(&self, mut s: Snapshot) {
        let corrections = lock(&self.corrections);
        for r in &mut s.rows {
            let key = (r.account.clone(), r.region.clone(), r.id.clone());
            r.last_correction = corrections.get(&key).cloned();
        }
        drop(corrections);
        let keys: std::collections::BTreeSet<Key> = s
            .rows
            .iter()
            .map(|r| (r.account.clone(), r.region.clone(), r.id.clone()))
            .collect();
        lock(&self.history).retain(|k, _| keys.contains(k));
        lock(&self.corrections).retain(|k, _| keys.contains(k));
        *lock(&self.snapshot) = Arc::new(s);
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
}

fn row_json(r: &Row) -> Value {
    json!({
        "account": r.account,
        "region": r.region,
        "id": r.id,
        "name": Value::Null,
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

/// `/status.json`.
pub fn json(s: &Snapshot) -> Value {
    let count = |st: State| s.rows.iter().filter(|r| r.state == st).count();
    let held = |rail: &str| s.rows.iter().filter(|r| r.hold == Some(rail)).count();
    let iso = |status: &str| {
        s.rows
            .iter()
            .filter(|r| r.isolation["status"] == status)
            .count()
    };
    json!({
        "version": 1,
        "revision": s.revision,
        "commit": s.commit,
        "summary": {
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
            "oldestVerification": s.oldest_verification.as_ref().map(time),
            "events": s.events,
            "shard": s.shard,
            "lastPass": s.last_pass.as_ref().map(time),
        },
        "groups": s.rows.iter().map(row_json).collect::<Vec<_>>(),
    })
}

/// One group's page data: its row and its history.
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
