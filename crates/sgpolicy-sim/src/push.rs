//! EventBridge: every recorded event pushed to HTTP targets as a CloudEvents 1.0 JSON envelope
//! (`data` = the ActionTrail record), `POST`ed with `Authorization: Bearer <token>`, after a
//! configured delay, with deterministic fractions of duplicates (the same `id` twice) and losses,
//! and retries when the target fails (at-least-once, as the reference §3 describes).
//!
//! Targets must be plain-HTTP loopback IP URLs (`http://127.0.0.1:PORT/...`, `http://[::1]:PORT/`):
//! the simulator never sends traffic anywhere else. Its client uses no proxy and follows no redirect.
//!
//! Fractions are spread evenly, like the fault layer's (`chaos`): a `lossRate` of 0.5 drops exactly
//! every second event a target matches, so tests can count what arrives.

use crate::chaos::Spread;
use crate::trail::StoredEvent;
use crate::Simulator;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// Delivery log entries kept at most, oldest dropped first.
const DELIVERY_LOG_CAP: usize = 10_000;

/// `POST /_sim/eventbridge` and the seed's `eventBridge`. Posting replaces the whole configuration
/// (and its loss and duplicate counters); `{}` removes every target.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EventBridgeConfig {
    #[serde(default)]
    pub targets: Vec<PushTarget>,
}

/// One rule's HTTP target.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PushTarget {
    /// `http://<loopback IP>:<port>/<path>`.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`; no header without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Wait this long after the event before the first attempt.
    #[serde(default)]
    pub delay_ms: u64,
    /// Fraction of delivered events sent twice (same envelope, same `id`).
    #[serde(default)]
    pub duplicate_rate: f64,
    /// Fraction of matching events never sent at all.
    #[serde(default)]
    pub loss_rate: f64,
    /// Only events of this account (default: every account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Only events of these regions (default: all).
    #[serde(default)]
    pub regions: Vec<String>,
    /// Only these `eventName`s, like a rule's `data.eventName` pattern (default: all).
    #[serde(default)]
    pub event_names: Vec<String>,
    /// Only these `eventType`s (`ApiCall`, `ConsoleOperation`; default: all).
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Further attempts after a failed one (non-2xx answer, refused connection, timeout).
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default = "default_retry_delay")]
    pub retry_delay_ms: u64,
    /// Per attempt.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_retries() -> u32 {
    3
}
fn default_retry_delay() -> u64 {
    1000
}
fn default_timeout() -> u64 {
    5000
}

impl fmt::Debug for PushTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushTarget")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("delay_ms", &self.delay_ms)
            .field("duplicate_rate", &self.duplicate_rate)
            .field("loss_rate", &self.loss_rate)
            .finish_non_exhaustive()
    }
}

impl EventBridgeConfig {
    /// Loopback HTTP URLs, rates in `0..=1`, tokens that fit a header.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (i, t) in self.targets.iter().enumerate() {
            check_url(&t.url).map_err(|e| anyhow::anyhow!("targets[{i}]: {e}"))?;
            for (name, rate) in [
                ("duplicateRate", t.duplicate_rate),
                ("lossRate", t.loss_rate),
            ] {
                if !(0.0..=1.0).contains(&rate) {
                    anyhow::bail!("targets[{i}]: {name} must be between 0 and 1, not {rate}");
                }
            }
            if let Some(tok) = &t.token {
                if tok.is_empty()
                    || reqwest::header::HeaderValue::from_str(&format!("Bearer {tok}")).is_err()
                {
                    anyhow::bail!("targets[{i}]: token must be non-empty visible ASCII");
                }
            }
        }
        Ok(())
    }

    /// The configuration with every token replaced, for `GET /_sim/eventbridge`.
    pub fn redacted(&self) -> EventBridgeConfig {
        let mut c = self.clone();
        for t in &mut c.targets {
            if t.token.is_some() {
                t.token = Some(String::from("<redacted>"));
            }
        }
        c
    }
}

/// Only `http://` to a loopback IP literal: a name could resolve anywhere.
fn check_url(url: &str) -> Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("url {url:?}: {e}"))?;
    if u.scheme() != "http" {
        return Err(format!("url {url:?}: only http:// targets are supported"));
    }
    // An IPv6 host comes bracketed; a name does not parse as an address at all.
    let loopback = u
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(format!(
            "url {url:?}: the simulator pushes to loopback IP addresses only (127.0.0.1, [::1])"
        ));
    }
    Ok(())
}

/// One attempt to deliver an envelope, or a decision not to (`lost`), as `GET
/// /_sim/eventbridge/deliveries` lists them.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub seq: u64,
    pub url: String,
    /// The envelope's CloudEvents `id` (a duplicate repeats it).
    pub id: String,
    /// `data.eventId`.
    pub event_id: String,
    /// 1, or 2 for the duplicate copy.
    pub copy: u8,
    /// 1-based; 0 for a lost event.
    pub attempt: u32,
    /// `delivered` (2xx), `failed` (any other answer, or no answer) or `lost`.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The live push state: targets with their counters, the delivery log, deliveries under way.
pub struct Bus {
    cfg: EventBridgeConfig,
    /// Per target: (loss, duplicate) accumulators.
    spreads: Vec<(Spread, Spread)>,
    log: VecDeque<Delivery>,
    next_seq: u64,
    in_flight: usize,
    /// Built on first use: most simulators never push.
    client: Option<reqwest::Client>,
}

impl Bus {
    pub fn new(cfg: EventBridgeConfig) -> Bus {
        let mut bus = Bus {
            cfg: EventBridgeConfig::default(),
            spreads: Vec::new(),
            log: VecDeque::new(),
            next_seq: 1,
            in_flight: 0,
            client: None,
        };
        bus.configure(cfg);
        bus
    }

    /// Replaces the targets and resets their counters; the delivery log and deliveries under way
    /// are kept.
    pub fn configure(&mut self, cfg: EventBridgeConfig) {
        self.spreads = cfg
            .targets
            .iter()
            .map(|t| (Spread::new(t.loss_rate), Spread::new(t.duplicate_rate)))
            .collect();
        self.cfg = cfg;
    }

    pub fn config(&self) -> &EventBridgeConfig {
        &self.cfg
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.log.iter().cloned().collect()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The HTTP client: no proxy (a proxy variable must not send loopback traffic elsewhere), no
    /// redirects (a target must not send it elsewhere either).
    fn client(&mut self) -> Option<reqwest::Client> {
        if self.client.is_none() {
            self.client = reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .ok();
        }
        self.client.clone()
    }

    fn log(&mut self, mut d: Delivery) {
        d.seq = self.next_seq;
        self.next_seq += 1;
        if self.log.len() >= DELIVERY_LOG_CAP {
            self.log.pop_front();
        }
        self.log.push_back(d);
    }
}

fn matches(t: &PushTarget, ev: &StoredEvent) -> bool {
    let listed = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
    t.account.as_ref().map_or(true, |a| *a == ev.account)
        && listed(&t.regions, &ev.region)
        && listed(&t.event_names, ev.field("eventName"))
        && listed(&t.event_types, ev.field("eventType"))
}

/// The CloudEvents 1.0 envelope EventBridge delivers, the record as `data`.
pub fn envelope(ev: &StoredEvent, now: chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "specversion": "1.0",
        "id": uuid::Uuid::new_v4().to_string(),
        "source": "acs.actiontrail",
        "type": format!("actiontrail:ActionTrail:{}", ev.field("eventType")),
        "subject": format!("acs.actiontrail:{}:{}:{}", ev.region, ev.account, ev.field("eventName")),
        "time": now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "datacontenttype": "application/json;charset=utf-8",
        "aliyunaccountid": ev.account,
        "aliyuneventbusname": "default",
        "aliyunregionid": ev.region,
        "aliyunpublishtime": now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "data": ev.record,
    })
}

/// One envelope on its way to one target.
struct Job {
    target: PushTarget,
    body: String,
    id: String,
    event_id: String,
    copies: u8,
}

impl Simulator {
    /// Hands freshly recorded events to every matching target: lost ones are logged at once, the
    /// others delivered by a task each (on the current tokio runtime).
    pub(crate) fn publish(&self, events: Vec<StoredEvent>) {
        if events.is_empty() {
            return;
        }
        let now = chrono::Utc::now();
        let mut jobs = Vec::new();
        let mut bus = self.bus();
        for ev in &events {
            for i in 0..bus.cfg.targets.len() {
                if !matches(&bus.cfg.targets[i], ev) {
                    continue;
                }
                // Both counters tick for every matching event, so each keeps its own fraction.
                let (lost, dup) = {
                    let (loss, dup) = &mut bus.spreads[i];
                    (loss.tick(), dup.tick())
                };
                let env = envelope(ev, now);
                let id = env["id"].as_str().unwrap_or_default().to_string();
                let event_id = ev.field("eventId").to_string();
                let url = bus.cfg.targets[i].url.clone();
                if lost {
                    bus.log(Delivery {
                        seq: 0,
                        url,
                        id,
                        event_id,
                        copy: 1,
                        attempt: 0,
                        outcome: "lost".into(),
                        status: None,
                        error: None,
                    });
                    continue;
                }
                jobs.push(Job {
                    target: bus.cfg.targets[i].clone(),
                    body: env.to_string(),
                    id,
                    event_id,
                    copies: if dup { 2 } else { 1 },
                });
            }
        }
        let runtime = tokio::runtime::Handle::try_current();
        for job in jobs {
            match &runtime {
                Ok(rt) => {
                    bus.in_flight += 1;
                    rt.spawn(deliver(self.clone(), job));
                }
                Err(_) => bus.log(Delivery {
                    seq: 0,
                    url: job.target.url,
                    id: job.id,
                    event_id: job.event_id,
                    copy: 1,
                    attempt: 0,
                    outcome: "failed".into(),
                    status: None,
                    error: Some("no tokio runtime to deliver on".into()),
                }),
            }
        }
    }

    /// Waits until every delivery under way has ended (delivered, or failed its last attempt).
    /// What was published after the call may still be under way when it returns.
    pub async fn deliveries_settled(&self) {
        loop {
            // Registered before the check, so a delivery ending in between still wakes it.
            let woken = self.inner.push_idle.notified();
            if self.bus().in_flight() == 0 {
                return;
            }
            woken.await;
        }
    }
}

/// Delivers one envelope (twice for a duplicate), each copy retried as the target says.
async fn deliver(sim: Simulator, job: Job) {
    let t = &job.target;
    if t.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(t.delay_ms)).await;
    }
    let client = sim.bus().client();
    for copy in 1..=job.copies {
        for attempt in 1..=t.retries.saturating_add(1) {
            let (status, error) = match &client {
                None => (None, Some(String::from("no HTTP client"))),
                Some(c) => {
                    let mut req = c
                        .post(&t.url)
                        .timeout(Duration::from_millis(t.timeout_ms))
                        .header(
                            reqwest::header::CONTENT_TYPE,
                            "application/json;charset=utf-8",
                        )
                        .body(job.body.clone());
                    if let Some(tok) = &t.token {
                        req = req.bearer_auth(tok);
                    }
                    match req.send().await {
                        Ok(r) => (Some(r.status().as_u16()), None),
                        Err(e) => (None, Some(e.to_string())),
                    }
                }
            };
            let delivered = status.is_some_and(|s| (200..300).contains(&s));
            sim.bus().log(Delivery {
                seq: 0,
                url: t.url.clone(),
                id: job.id.clone(),
                event_id: job.event_id.clone(),
                copy,
                attempt,
                outcome: if delivered { "delivered" } else { "failed" }.into(),
                status,
                error,
            });
            if delivered {
                break;
            }
            if attempt <= t.retries && t.retry_delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(t.retry_delay_ms)).await;
            }
        }
    }
    sim.bus().in_flight -= 1;
    sim.inner.push_idle.notify_waiters();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> PushTarget {
        serde_json::from_value(json!({ "url": url })).expect("target")
    }

    #[test]
    fn only_loopback_http_targets_are_accepted() {
        for ok in [
            "http://127.0.0.1:8080/hook",
            "http://127.0.0.2:1/",
            "http://[::1]:9/x",
        ] {
            let c = EventBridgeConfig {
                targets: vec![target(ok)],
            };
            assert!(c.validate().is_ok(), "{ok}");
        }
        for bad in [
            "https://127.0.0.1:8080/",
            "http://localhost:8080/",
            "http://10.0.0.1/",
            "http://example.com/",
            "http://[::2]/",
            "not a url",
        ] {
            let c = EventBridgeConfig {
                targets: vec![target(bad)],
            };
            assert!(c.validate().is_err(), "{bad}");
        }
        let mut t = target("http://127.0.0.1:1/");
        t.loss_rate = 1.5;
        assert!(EventBridgeConfig { targets: vec![t] }.validate().is_err());
        let mut t = target("http://127.0.0.1:1/");
        t.token = Some("a\nb".into());
        assert!(EventBridgeConfig { targets: vec![t] }.validate().is_err());
    }

    #[test]
    fn tokens_never_reach_debug_or_the_admin_view() {
        let mut t = target("http://127.0.0.1:1/");
        t.token = Some("s3cret".into());
        let c = EventBridgeConfig { targets: vec![t] };
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(!serde_json::to_string(&c.redacted())
            .unwrap_or_default()
            .contains("s3cret"));
    }
}
