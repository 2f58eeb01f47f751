//! One sink's background task: take a burst from the queue, hold back repeated `held`s until their
//! reminder is due, render, sign, POST, retry with backoff. It owns everything it touches, so the
//! daemon's only cost is `try_send`. The URL and the secret are never logged: log lines name the
//! sink (`sink=slack-1`), and reqwest's errors are stripped of the URL.

use super::config::SinkKind;
use super::render;
use super::sign;
use super::{Kind, Notification, NotifyMetrics, SinkSettings, Tuning};
use chrono::Utc;
use serde_json::Value;
use std::collections::HashMap;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub(super) struct Sink {
    settings: SinkSettings,
    tuning: Tuning,
    metrics: NotifyMetrics,
    client: reqwest::Client,
    /// Held groups already told, and when they were last told.
    held: HashMap<String, Instant>,
}

/// Why a message was not delivered, and whether another attempt may help.
#[derive(Debug)]
struct Failed {
    why: String,
    retry: bool,
}

fn held_key(n: &Notification) -> Option<String> {
    n.group
        .as_ref()
        .map(|g| format!("{}/{}/{}", g.account, g.region, g.id))
}

impl Sink {
    pub(super) fn new(
        settings: SinkSettings,
        tuning: Tuning,
        metrics: NotifyMetrics,
    ) -> anyhow::Result<Sink> {
        let client = reqwest::Client::builder()
            .timeout(tuning.timeout)
            // A redirect would carry the signed body (and a token in the URL) somewhere unconfigured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sgpolicy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                anyhow::anyhow!("building the notification HTTP client: {}", e.without_url())
            })?;
        Ok(Sink {
            settings,
            tuning,
            metrics,
            client,
            held: HashMap::new(),
        })
    }

    fn name(&self) -> &str {
        &self.settings.spec.name
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Notification>) {
        while let Some(first) = rx.recv().await {
            // A burst: everything that arrives within `coalesce` of its first notification.
            let deadline = Instant::now() + self.settings.spec.coalesce;
            let mut batch = vec![first];
            while batch.len() < self.tuning.max_batch.max(1) {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(n)) => batch.push(n),
                    _ => break,
                }
            }
            let batch = self.hold_back(batch, Instant::now());
            if !batch.is_empty() {
                self.deliver(&batch).await;
            }
        }
    }

    /// Drops a `held` for a group already told, unless its `remind` interval has passed (then it goes
    /// out marked as a reminder). Any other notification about the group ends its held state.
    fn hold_back(&mut self, batch: Vec<Notification>, now: Instant) -> Vec<Notification> {
        let mut out = Vec::with_capacity(batch.len());
        let mut suppressed = 0;
        for mut n in batch {
            let Some(key) = held_key(&n) else {
                out.push(n);
                continue;
            };
            if n.kind != Kind::Held {
                self.held.remove(&key);
                out.push(n);
                continue;
            }
            match self.held.get(&key) {
                None => {
                    self.held.insert(key, now);
                    out.push(n);
                }
                Some(last) => match self.settings.spec.remind {
                    Some(every) if now.duration_since(*last) >= every => {
                        self.held.insert(key, now);
                        n.text = format!("still held (reminder): {}", n.text);
                        out.push(n);
                    }
                    _ => suppressed += 1,
                },
            }
        }
        if suppressed > 0 {
            self.metrics.count(self.name(), "suppressed", suppressed);
        }
        out
    }

    #[cfg(test)]
    pub(super) fn hold_back_for_tests(
        &mut self,
        batch: Vec<Notification>,
        now: Instant,
    ) -> Vec<Notification> {
        self.hold_back(batch, now)
    }

    async fn deliver(&self, batch: &[Notification]) {
        let body = render::body(self.settings.spec.kind, self.settings.spec.format, batch);
        let mut delay = self.tuning.backoff;
        let attempts = self.tuning.attempts.max(1);
        for attempt in 1..=attempts {
            match self.attempt(&body).await {
                Ok(()) => {
                    self.metrics.count(self.name(), "sent", batch.len() as u64);
                    tracing::debug!(sink = %self.name(), notifications = batch.len(), attempt, "notification sent");
                    return;
                }
                Err(f) if f.retry && attempt < attempts => {
                    tracing::info!(sink = %self.name(), attempt, retry_in_ms = delay.as_millis() as u64, why = %crate::escape::Text(&f.why), "notification not delivered; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.tuning.backoff_cap);
                }
                Err(f) => {
                    self.metrics
                        .count(self.name(), "failed", batch.len() as u64);
                    tracing::warn!(sink = %self.name(), notifications = batch.len(), attempt, why = %crate::escape::Text(&f.why), "notification not delivered; giving up");
                    return;
                }
            }
        }
    }

    /// One POST, signed afresh (a retry carries a new timestamp).
    async fn attempt(&self, body: &Value) -> Result<(), Failed> {
        let response = self
            .signed_request(body)?
            .send()
            .await
            .map_err(|e| Failed {
                why: e.without_url().to_string(),
                retry: true,
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(Failed {
                why: format!("HTTP {status}"),
                retry: status.is_server_error() || status.as_u16() == 429,
            });
        }
        // DingTalk and Lark answer 200 with an error code in the body (a bad signature, a keyword).
        if matches!(self.settings.spec.kind, SinkKind::Dingtalk | SinkKind::Lark) {
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            return chat_answer(&answer);
        }
        Ok(())
    }

    /// The POST of `body` to this sink, signed the way its kind expects, timestamped now.
    fn signed_request(&self, body: &Value) -> Result<reqwest::RequestBuilder, Failed> {
        let url = self.settings.spec.url.expose();
        let secret = self.settings.secret.as_ref().map(|s| s.expose());
        let now = Utc::now();
        Ok(match self.settings.spec.kind {
            SinkKind::Webhook => self.webhook_request(url, secret, now.timestamp(), body),
            SinkKind::Slack => self.client.post(url).json(body),
            SinkKind::Dingtalk => {
                let mut u = url::Url::parse(url).map_err(|_| Failed {
                    why: "the url does not parse".into(),
                    retry: false,
                })?;
                if let Some(secret) = secret {
                    let ts = now.timestamp_millis();
                    u.query_pairs_mut()
                        .append_pair("timestamp", &ts.to_string())
                        .append_pair("sign", &sign::dingtalk(secret, ts));
                }
                self.client.post(u).json(body)
            }
            SinkKind::Lark => {
                let mut body = body.clone();
                if let (Some(secret), Some(obj)) = (secret, body.as_object_mut()) {
                    let ts = now.timestamp();
                    obj.insert("timestamp".into(), Value::String(ts.to_string()));
                    obj.insert("sign".into(), Value::String(sign::lark(secret, ts)));
                }
                self.client.post(url).json(&body)
            }
            SinkKind::Alertmanager => {
                let endpoint = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
                let r = self.client.post(endpoint).json(body);
                match secret {
                    Some(secret) => r.bearer_auth(secret),
                    None => r,
                }
            }
        })
    }

    /// A generic webhook's POST: the exact bytes are signed, so they are serialized once here and sent
    /// as they are, with the timestamp and signature headers when a secret is set.
    fn webhook_request(
        &self,
        url: &str,
        secret: Option<&str>,
        ts: i64,
        body: &Value,
    ) -> reqwest::RequestBuilder {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let mut r = self
            .client
            .post(url)
            .header("content-type", "application/json");
        if let Some(secret) = secret {
            r = r
                .header(sign::WEBHOOK_TIMESTAMP_HEADER, ts.to_string())
                .header(
                    sign::WEBHOOK_SIGNATURE_HEADER,
                    sign::webhook(secret, ts, &bytes),
                );
        }
        r.body(bytes)
    }
}

/// A DingTalk or Lark answer: code 0 (or none) is delivered, anything else a refusal that a retry
/// would not change.
fn chat_answer(answer: &Value) -> Result<(), Failed> {
    let code = answer
        .get("errcode")
        .or_else(|| answer.get("code"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if code == 0 {
        return Ok(());
    }
    let msg = answer
        .get("errmsg")
        .or_else(|| answer.get("msg"))
        .and_then(Value::as_str)
        .unwrap_or("");
    Err(Failed {
        why: format!(
            "refused with code {code}: {}",
            crate::policy::yaml::clip(msg)
        ),
        retry: false,
    })
}
