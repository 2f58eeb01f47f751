//! Notifications against real HTTP receivers on loopback: each vendor's body and signature recomputed
//! here independently (hmac, base64, percent-decoding), coalescing, overflow, retry, and secrets kept
//! out of the log.

use super::config::{Format, SinkKind, SinkSpec};
use super::*;
use crate::events::{ActorType, Author, EventType};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use base64::Engine;
use chrono::TimeZone;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::Mutex;
use std::time::Duration;

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Got {
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
    fn query(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.uri.query().unwrap_or("").as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// A loopback receiver that records every request and answers with the scripted statuses in order
/// (then 200), optionally holding each answer until the test opens its gate.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
    gate: Option<Arc<tokio::sync::Semaphore>>,
}

impl Receiver {
    async fn start(self) -> (Self, String) {
        async fn handle(
            State(r): State<Receiver>,
            uri: Uri,
            headers: HeaderMap,
            body: Bytes,
        ) -> (StatusCode, String) {
            r.got.lock().unwrap().push(Got { uri, headers, body });
            if let Some(g) = &r.gate {
                g.acquire().await.expect("gate").forget();
            }
            let mut s = r.statuses.lock().unwrap();
            let status = if s.is_empty() { 200 } else { s.remove(0) };
            (
                StatusCode::from_u16(status).unwrap(),
                r#"{"errcode":0,"code":0}"#.to_string(),
            )
        }
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (self, format!("http://{addr}"))
    }
    fn requests(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

/// Polls `cond` until it holds; the one wait of these tests (no fixed sleeps, no timed assertions).
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

const HOSTILE: &str =
    "<!channel> [click](http://evil.example) *x*\n- forged line <at user_id=\"all\"></at>";

fn author() -> Arc<Author> {
    Arc::new(Author {
        actor: ActorType::RamUser,
        name: Some("alice".into()),
        principal_id: Some("2001".into()),
        event_type: EventType::ConsoleOperation,
        source_ip: Some("198.51.100.7".into()),
        user_agent: Some("console".into()),
        event_time: Some("2026-12-07T10:00:00Z".into()),
        event_id: "ev-1".into(),
        set_to: None,
        via: Some(crate::events::Via::Pull),
    })
}

fn corrected(i: usize) -> Notification {
    Notification::new(
        Kind::Corrected,
        chrono::Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap(),
        format!("sg-{i} changed back to Drop"),
    )
    .group(GroupRef {
        account: String::new(),
        region: "cn-hangzhou".into(),
        id: format!("sg-{i}"),
        source: "prod/web.yaml:3".into(),
    })
    .change("Accept", "Drop")
    .changed_by(author())
}

/// A sink of `kind` to `url` that sends each burst at once (unless a test sets `coalesce`).
fn sink(kind: SinkKind, url: &str, secret: Option<&str>) -> SinkSettings {
    let mut spec = SinkSpec::new(kind, format!("{}-1", kind.as_str()), url);
    spec.coalesce = Duration::ZERO;
    SinkSettings {
        spec,
        secret: secret.map(Secret::new),
    }
}

fn fast() -> Tuning {
    Tuning {
        backoff: Duration::from_millis(10),
        backoff_cap: Duration::from_millis(20),
        ..Tuning::default()
    }
}

fn start(sinks: Vec<SinkSettings>, tuning: Tuning) -> (Notifier, NotifyMetrics) {
    let metrics = NotifyMetrics::default();
    let n = Notifier::start(NotifySettings { sinks, tuning }, metrics.clone()).unwrap();
    (n, metrics)
}

#[tokio::test]
async fn the_webhook_body_is_the_documented_document_signed_with_hmac_sha256_over_timestamp_dot_body(
) {
    let (rx, url) = Receiver::default().start().await;
    let (n, _) = start(vec![sink(SinkKind::Webhook, &url, Some("whsec"))], fast());
    n.send(corrected(1).reason(HOSTILE));
    until("one webhook request", || rx.requests().len() == 1).await;
    let got = &rx.requests()[0];
    let ts = got.headers["x-sgpolicy-timestamp"].to_str().unwrap();
    let mut signed = format!("{ts}.").into_bytes();
    signed.extend_from_slice(&got.body);
    let expected: String = hmac(b"whsec", &signed)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        got.headers["x-sgpolicy-signature"].to_str().unwrap(),
        format!("sha256={expected}")
    );
    assert_eq!(
        got.json(),
        json!({"version": 1, "notifications": [{
            "kind": "corrected", "time": "2026-12-07T10:00:00Z",
            "group": {"account": "", "region": "cn-hangzhou", "id": "sg-1", "source": "prod/web.yaml:3"},
            "from": "Accept", "to": "Drop",
            "changedBy": crate::report::author_json(&author()),
            "reason": HOSTILE,
            "text": "sg-1 changed back to Drop",
        }]})
    );
}

#[tokio::test]
async fn dingtalk_is_signed_in_the_query_as_dingtalk_documents_and_its_markdown_cannot_link_or_forge_lines(
) {
    let (rx, url) = Receiver::default().start().await;
    let (n, _) = start(
        vec![sink(
            SinkKind::Dingtalk,
            &format!("{url}/robot/send?access_token=tok"),
            Some("SECdt"),
        )],
        fast(),
    );
    n.send(corrected(1).reason(HOSTILE));
    until("one DingTalk request", || rx.requests().len() == 1).await;
    let got = &rx.requests()[0];
    assert_eq!(got.uri.path(), "/robot/send");
    assert_eq!(got.query("access_token").as_deref(), Some("tok"));
    let ts = got.query("timestamp").expect("timestamp");
    assert_eq!(ts.len(), 13, "milliseconds: {ts}");
    let sign = got.query("sign").expect("sign");
    assert_eq!(
        sign,
        b64(&hmac(b"SECdt", format!("{ts}\nSECdt").as_bytes()))
    );
    // The raw query carries the base64 URL-encoded: no bare '+', '/' or '='.
    let raw = got.uri.query().unwrap().split("sign=").nth(1).unwrap();
    assert!(!raw.contains(['+', '/', '=']), "{raw}");
    let body = got.json();
    assert_eq!(body["msgtype"], "markdown");
    let text = body["markdown"]["text"].as_str().unwrap();
    assert!(
        text.contains("\\[click\\]\\(http://evil.example\\)"),
        "{text}"
    );
    assert!(
        !text.contains("\n- forged"),
        "a hostile newline started a line: {text}"
    );
    assert_eq!(text.lines().count(), 2, "{text}");
}

#[tokio::test]
async fn lark_is_signed_in_the_body_with_timestamp_and_secret_as_the_key_over_an_empty_message() {
    let (rx, url) = Receiver::default().start().await;
    let mut s = sink(
        SinkKind::Lark,
        &format!("{url}/open-apis/bot/v2/hook/x"),
        Some("larksecret"),
    );
    s.spec.format = Format::Text;
    let (n, _) = start(vec![s], fast());
    n.send(corrected(1).reason(HOSTILE));
    until("one Lark request", || rx.requests().len() == 1).await;
    let body = rx.requests()[0].json();
    let ts = body["timestamp"].as_str().unwrap();
    assert_eq!(ts.len(), 10, "seconds: {ts}");
    assert_eq!(
        body["sign"],
        b64(&hmac(format!("{ts}\nlarksecret").as_bytes(), b""))
    );
    assert_eq!(body["msg_type"], "text");
    let text = body["content"]["text"].as_str().unwrap();
    assert!(!text.contains("<at"), "{text}");
    assert_eq!(text.lines().count(), 2, "{text}");
}

#[tokio::test]
async fn slack_gets_one_text_with_its_control_characters_as_entities() {
    let (rx, url) = Receiver::default().start().await;
    let (n, _) = start(vec![sink(SinkKind::Slack, &url, None)], fast());
    n.send(corrected(1).reason(HOSTILE));
    until("one Slack request", || rx.requests().len() == 1).await;
    let text = rx.requests()[0].json()["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains("&lt;!channel&gt;") && !text.contains("<!channel>"),
        "{text}"
    );
    assert!(
        text.starts_with("sgpolicy: corrected\n- corrected · sg-1 (cn-hangzhou, prod/web.yaml:3)"),
        "{text}"
    );
    assert_eq!(
        text.lines().count(),
        2,
        "a hostile newline started a line: {text}"
    );
}

#[tokio::test]
async fn alertmanager_gets_v2_alerts_and_an_ended_kind_resolves_the_alert_it_raised() {
    let (rx, url) = Receiver::default().start().await;
    let (n, _) = start(vec![sink(SinkKind::Alertmanager, &url, None)], fast());
    let t = chrono::Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap();
    let g = GroupRef {
        account: String::new(),
        region: "cn-hangzhou".into(),
        id: "sg-9".into(),
        source: "a.yaml:1".into(),
    };
    n.send(
        Notification::new(Kind::IsolationLost, t, "sg-9 is reachable")
            .group(g.clone())
            .reason("path via sg-2"),
    );
    until("the raising alert", || rx.requests().len() == 1).await;
    n.send(
        Notification::new(
            Kind::IsolationRestored,
            t + chrono::Duration::minutes(5),
            "sg-9 isolated again",
        )
        .group(g),
    );
    until("the resolving alert", || rx.requests().len() == 2).await;
    let reqs = rx.requests();
    assert!(reqs.iter().all(|r| r.uri.path() == "/api/v2/alerts"));
    let (raised, resolved) = (reqs[0].json()[0].clone(), reqs[1].json()[0].clone());
    assert_eq!(
        raised["labels"], resolved["labels"],
        "the same labels identify the same alert"
    );
    assert_eq!(raised["labels"]["alertname"], "SgpolicyIsolationLost");
    assert_eq!(raised["labels"]["group_id"], "sg-9");
    assert_eq!(raised["startsAt"], "2026-12-07T10:00:00Z");
    assert!(raised.get("endsAt").is_none());
    assert_eq!(raised["annotations"]["reason"], "path via sg-2");
    assert_eq!(resolved["endsAt"], "2026-12-07T10:05:00Z");
}

#[tokio::test]
async fn a_burst_of_500_corrections_becomes_one_message_listing_all_500() {
    let (rx, url) = Receiver::default().start().await;
    let mut s = sink(SinkKind::Webhook, &url, None);
    s.spec.coalesce = config::DEFAULT_COALESCE;
    let (n, metrics) = start(vec![s], fast());
    let began = std::time::Instant::now();
    for i in 0..500 {
        n.send(corrected(i));
    }
    until("the burst's message", || !rx.requests().is_empty()).await;
    let took = began.elapsed();
    until("the sent count", || metrics.get("webhook-1", "sent") == 500).await;
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1, "one message for the whole burst");
    assert_eq!(
        reqs[0].json()["notifications"].as_array().unwrap().len(),
        500
    );
    eprintln!(
        "a burst of 500 corrections became one message after {} ms (coalesce {:?})",
        took.as_millis(),
        config::DEFAULT_COALESCE
    );
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_while_send_returns_at_once() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (rx, url) = Receiver {
        gate: Some(gate.clone()),
        ..Default::default()
    }
    .start()
    .await;
    let (n, metrics) = start(
        vec![sink(SinkKind::Webhook, &url, None)],
        Tuning { queue: 4, ..fast() },
    );
    n.send(corrected(0));
    until("the first message held at the receiver", || {
        rx.requests().len() == 1
    })
    .await;
    for i in 1..=10 {
        n.send(corrected(i));
    }
    assert_eq!(
        metrics.get("webhook-1", "dropped"),
        6,
        "4 queued behind the stuck request, 6 dropped"
    );
    gate.add_permits(100);
    until("the queued four sent", || {
        metrics.get("webhook-1", "sent") == 5
    })
    .await;
    let listed: usize = rx
        .requests()
        .iter()
        .map(|r| r.json()["notifications"].as_array().unwrap().len())
        .sum();
    assert_eq!(listed, 5);
}

#[tokio::test]
async fn a_500_is_retried_with_the_same_notifications_and_counted_once_as_sent() {
    let rx = Receiver {
        statuses: Arc::new(Mutex::new(vec![500, 503])),
        ..Default::default()
    };
    let (rx, url) = rx.start().await;
    let (n, metrics) = start(vec![sink(SinkKind::Webhook, &url, Some("k"))], fast());
    n.send(corrected(1));
    until("the third attempt", || {
        metrics.get("webhook-1", "sent") == 1
    })
    .await;
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[0].json(), reqs[2].json());
    assert_eq!(metrics.get("webhook-1", "failed"), 0);
}

#[tokio::test]
async fn a_refused_message_is_not_retried_and_counts_as_failed() {
    let rx = Receiver {
        statuses: Arc::new(Mutex::new(vec![400])),
        ..Default::default()
    };
    let (rx, url) = rx.start().await;
    let (n, metrics) = start(vec![sink(SinkKind::Slack, &url, None)], fast());
    n.send(corrected(1));
    until("the failure counted", || {
        metrics.get("slack-1", "failed") == 1
    })
    .await;
    assert_eq!(rx.requests().len(), 1);
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn neither_the_secret_nor_the_url_token_reaches_the_log_at_trace_level() {
    let log = Log::default();
    let sink_log = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink_log.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // A port nothing listens on: every attempt fails with a transport error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{closed}/robot/send?access_token=URLTOKEN42");
    let (n, metrics) = start(
        vec![
            sink(SinkKind::Dingtalk, &url, Some("SECRET-SIGNING-KEY")),
            sink(SinkKind::Webhook, &url, Some("SECRET-SIGNING-KEY")),
        ],
        Tuning {
            attempts: 2,
            ..fast()
        },
    );
    n.send(corrected(1));
    until("both sinks gave up", || {
        metrics.get("dingtalk-1", "failed") == 1 && metrics.get("webhook-1", "failed") == 1
    })
    .await;
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("giving up"), "{text}");
    for secret in ["SECRET-SIGNING-KEY", "URLTOKEN42", "sign="] {
        assert!(!text.contains(secret), "{secret} in the log:\n{text}");
    }
    assert!(!format!(
        "{:?}",
        sink(SinkKind::Slack, &url, Some("SECRET-SIGNING-KEY"))
    )
    .contains("SECRET"));
}

#[tokio::test]
async fn a_held_change_is_told_once_then_only_as_a_reminder_and_a_correction_ends_it() {
    let mut s = sink(SinkKind::Webhook, "http://127.0.0.1:9/", None);
    s.spec.remind = Some(Duration::from_secs(3600));
    let metrics = NotifyMetrics::default();
    let mut task = sink::Sink::new(s, fast(), metrics.clone()).unwrap();
    let held = || Notification {
        kind: Kind::Held,
        ..corrected(1)
    };
    let t0 = tokio::time::Instant::now();
    assert_eq!(
        task_hold(&mut task, vec![held()], t0).len(),
        1,
        "first: told"
    );
    assert!(
        task_hold(
            &mut task,
            vec![held(), held()],
            t0 + Duration::from_secs(60)
        )
        .is_empty(),
        "repeats: held back"
    );
    let reminder = task_hold(&mut task, vec![held()], t0 + Duration::from_secs(3600));
    assert!(
        reminder[0].text.starts_with("still held (reminder): "),
        "{:?}",
        reminder[0].text
    );
    assert_eq!(
        task_hold(
            &mut task,
            vec![corrected(1), held()],
            t0 + Duration::from_secs(3700)
        )
        .len(),
        2,
        "a correction ends the hold"
    );
    assert_eq!(metrics.get("webhook-1", "suppressed"), 2);
}

fn task_hold(
    task: &mut sink::Sink,
    batch: Vec<Notification>,
    now: tokio::time::Instant,
) -> Vec<Notification> {
    task.hold_back_for_tests(batch, now)
}

#[test]
fn filters_take_kinds_and_match_group_ids_and_files_by_glob() {
    let f = config::Filter {
        kinds: Some([Kind::Corrected].into()),
        groups: vec!["sg-1*".into()],
        files: vec!["prod/*".into()],
    };
    assert!(f.accepts(&corrected(12)));
    assert!(!f.accepts(&corrected(2)), "group pattern");
    assert!(
        !f.accepts(&Notification {
            kind: Kind::Held,
            ..corrected(1)
        }),
        "kind"
    );
    let mut staging = corrected(1);
    staging.group.as_mut().unwrap().source = "staging/web.yaml:3".into();
    assert!(!f.accepts(&staging), "file pattern");
    let events = Notification::new(Kind::Corrected, chrono::Utc::now(), "no group");
    assert!(
        f.accepts(&events),
        "no group: the group and file filters do not apply"
    );
}
