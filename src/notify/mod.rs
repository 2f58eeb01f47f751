//! Notifications: what sgpolicy did or could not do, told to the chat or alerting a team uses.
//!
//! The daemon builds one [`Notifier`] from `--notify-config` and calls [`Notifier::send`] wherever
//! something worth telling happens. `send` never waits and never fails: each sink has a bounded
//! queue and a background task of its own (`sink`), so a slow or dead receiver costs a pass nothing;
//! a full queue drops the notification and counts it (`sgpolicy_notifications_total{result="dropped"}`).
//! The task coalesces bursts into one message (a 500-group correction is one message), holds repeated
//! `held` notifications back until their `remind` interval, retries with backoff, and renders the
//! sink's format (`render`) with its signature (`sign`). The YAML is checked by `config` with
//! file:line errors; docs/notifications.md is the user's side of all this.

pub mod config;
mod metrics;
pub mod render;
pub mod sign;
mod sink;
#[cfg(test)]
mod tests;

pub use config::{ConfigError, SinkKind, SinkSpec};
pub use metrics::NotifyMetrics;

use crate::ecs::credentials::Secret;
use crate::events::Author;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What happened, exactly the `kind` values of the webhook body (issue 21).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Corrected,
    Held,
    Fight,
    IsolationLost,
    IsolationRestored,
    EventsUnavailable,
    EventsRecovered,
    PassFailing,
    FolderError,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Corrected,
        Kind::Held,
        Kind::Fight,
        Kind::IsolationLost,
        Kind::IsolationRestored,
        Kind::EventsUnavailable,
        Kind::EventsRecovered,
        Kind::PassFailing,
        Kind::FolderError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Corrected => "corrected",
            Kind::Held => "held",
            Kind::Fight => "fight",
            Kind::IsolationLost => "isolation-lost",
            Kind::IsolationRestored => "isolation-restored",
            Kind::EventsUnavailable => "events-unavailable",
            Kind::EventsRecovered => "events-recovered",
            Kind::PassFailing => "pass-failing",
            Kind::FolderError => "folder-error",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The alert this kind raises or ends in Alertmanager, and whether it ends it.
    pub fn alert(self) -> (&'static str, bool) {
        match self {
            Kind::Corrected => ("SgpolicyCorrected", false),
            Kind::Held => ("SgpolicyHeld", false),
            Kind::Fight => ("SgpolicyFight", false),
            Kind::IsolationLost => ("SgpolicyIsolationLost", false),
            Kind::IsolationRestored => ("SgpolicyIsolationLost", true),
            Kind::EventsUnavailable => ("SgpolicyEventsUnavailable", false),
            Kind::EventsRecovered => ("SgpolicyEventsUnavailable", true),
            Kind::PassFailing => ("SgpolicyPassFailing", false),
            Kind::FolderError => ("SgpolicyFolderError", false),
        }
    }
}

/// The group a notification is about, as the JSON report names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRef {
    /// The account a policy file names; empty for the credential chain's own account.
    pub account: String,
    pub region: String,
    pub id: String,
    /// `file:line` of the declaration.
    pub source: String,
}

/// One thing to tell. Every string may hold text from the cloud or the folder (names, reasons,
/// ActionTrail user names): renderers escape each for their format.
#[derive(Clone, Debug)]
pub struct Notification {
    pub kind: Kind,
    pub time: DateTime<Utc>,
    pub group: Option<GroupRef>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Who made the change, as in the JSON report's `changedBy` (ActionTrail's author).
    pub changed_by: Option<Arc<Author>>,
    /// Why: the rail that held a change, the error, the other party of a fight.
    pub reason: Option<String>,
    /// What the notification is about when it is not a group (an event source `pull`/`push`, the
    /// folder): it tells Alertmanager alerts apart and is not part of the webhook body.
    pub topic: Option<String>,
    /// A fight that ended (with `Kind::Fight`): Alertmanager resolves the fight's alert.
    pub ended: bool,
    /// One line for people.
    pub text: String,
}

impl Notification {
    /// A notification of `kind` at `time` with `text`, about nothing in particular yet.
    pub fn new(kind: Kind, time: DateTime<Utc>, text: impl Into<String>) -> Self {
        Notification {
            kind,
            time,
            group: None,
            from: None,
            to: None,
            changed_by: None,
            reason: None,
            topic: None,
            ended: false,
            text: text.into(),
        }
    }

    pub fn group(mut self, g: GroupRef) -> Self {
        self.group = Some(g);
        self
    }

    pub fn change(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.from = Some(from.into());
        self.to = Some(to.into());
        self
    }

    pub fn changed_by(mut self, a: Arc<Author>) -> Self {
        self.changed_by = Some(a);
        self
    }

    pub fn reason(mut self, r: impl Into<String>) -> Self {
        self.reason = Some(r.into());
        self
    }

    pub fn topic(mut self, t: impl Into<String>) -> Self {
        self.topic = Some(t.into());
        self
    }

    pub fn ended(mut self) -> Self {
        self.ended = true;
        self
    }

    /// Whether an Alertmanager alert for this notification is resolved rather than raised.
    pub fn resolves(&self) -> bool {
        self.kind.alert().1 || (self.kind == Kind::Fight && self.ended)
    }
}

/// One sink ready to run: its spec and the secrets its files held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkSettings {
    pub spec: SinkSpec,
    /// The signing secret `secretFile` held.
    pub secret: Option<Secret>,
}

/// `--notify-config` as read: no sink means notifications are off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotifySettings {
    pub sinks: Vec<SinkSettings>,
    pub tuning: Tuning,
}

/// The knobs tests shrink; the defaults are what docs/notifications.md states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Notifications a sink's queue holds before it drops new ones.
    pub queue: usize,
    /// Attempts per message (the first included).
    pub attempts: u32,
    /// First retry delay; doubles per attempt, capped at `backoff_cap`.
    pub backoff: Duration,
    pub backoff_cap: Duration,
    /// One request's timeout.
    pub timeout: Duration,
    /// Most notifications in one message; a bigger burst becomes several messages.
    pub max_batch: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            queue: 10_000,
            attempts: 5,
            backoff: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            max_batch: 1_000,
        }
    }
}

/// The daemon's handle: one bounded queue per sink, each drained by its own task.
#[derive(Clone, Debug, Default)]
pub struct Notifier {
    sinks: Vec<Queue>,
}

#[derive(Clone, Debug)]
struct Queue {
    name: String,
    filter: config::Filter,
    tx: mpsc::Sender<Notification>,
    metrics: NotifyMetrics,
}

impl Notifier {
    /// Starts one task per sink on the current tokio runtime. With no sink, `send` does nothing.
    pub fn start(settings: NotifySettings, metrics: NotifyMetrics) -> anyhow::Result<Notifier> {
        let mut sinks = Vec::new();
        for s in settings.sinks {
            let (tx, rx) = mpsc::channel(settings.tuning.queue.max(1));
            let name = s.spec.name.clone();
            let filter = s.spec.filter.clone();
            let task = sink::Sink::new(s, settings.tuning, metrics.clone())?;
            tokio::spawn(task.run(rx));
            sinks.push(Queue {
                name,
                filter,
                tx,
                metrics: metrics.clone(),
            });
        }
        Ok(Notifier { sinks })
    }

    /// Hands `n` to every sink whose filters take it. Never waits: a full queue drops it for that
    /// sink and counts `result="dropped"`.
    pub fn send(&self, n: Notification) {
        for q in &self.sinks {
            if !q.filter.accepts(&n) {
                continue;
            }
            if q.tx.try_send(n.clone()).is_err() {
                q.metrics.count(&q.name, "dropped", 1);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }
}
