//! `POST /events` for EventBridge HTTP targets: ActionTrail events pushed as CloudEvents 1.0 JSON
//! envelopes (one object, or an array of them), handed to the daemon as [`Heard`] values.
//!
//! Checks, in this order, each answered at once:
//! 1. `Authorization: Bearer <token>`, compared in constant time (an HMAC of each side under a key
//!    drawn at start-up, compared with `Mac::verify_slice`, so neither the content nor the length of
//!    the token leaks through timing). No or a wrong token: **401**, and nothing else is read.
//! 2. The body, read up to [`MAX_PUSH_BODY`] bytes: a larger `Content-Length`, or a chunked body
//!    that grows past it: **413** (the read stops there; memory stays bounded).
//! 3. Not JSON: **400**.
//! 4. Valid JSON that is not a `ModifySecurityGroupPolicy` event (another event, a failed call, a
//!    malformed envelope, a number): **202**, counted by reason in [`Status`].
//! 5. An event: offered to the [`Sink`] and answered **202** at once; the daemon's intake queues it
//!    and the targeted lane does the work. The same (`source`, `id`) twice is handed over once (a bounded
//!    [`RecentIds`] of [`SEEN_CAP`] deliveries) and counted `duplicate`.
//!
//! When the [`Sink`] refuses an event (the daemon's queue of routine events is full, see
//! `daemon::intake`; or a channel is full or closed) the answer is **503** with `Retry-After`, and
//! the envelopes not handed over are not remembered, so EventBridge's retry of the
//! same body delivers them (those that were handed over count as duplicates then). Every answer is a
//! short JSON body; the token is never echoed or logged.

use super::dedup::RecentIds;
use super::record::parse_envelope;
use super::status::{self, Status};
use super::{Heard, Via, MAX_PUSH_BODY};
use crate::ecs::credentials::Secret;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures::StreamExt;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Deliveries (`source`, `id`) remembered for deduplication.
pub const SEEN_CAP: usize = 50_000;
/// What a 503 asks EventBridge to wait, in seconds.
pub const RETRY_AFTER_SECS: u32 = 5;

/// The bearer token, kept only as an HMAC under a key drawn at start-up.
struct Token {
    key: [u8; 32],
    /// `None` for an empty token: nothing is accepted.
    mac: Option<Vec<u8>>,
}

impl Token {
    fn new(token: &Secret) -> Token {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        let mut t = Token { key, mac: None };
        if !token.expose().is_empty() {
            t.mac = Some(
                t.hmac(token.expose().as_bytes())
                    .finalize()
                    .into_bytes()
                    .to_vec(),
            );
        }
        t
    }

    fn hmac(&self, data: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(data);
        mac
    }

    /// Whether the request carries `Authorization: Bearer <the token>`.
    fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.mac else {
            return false;
        };
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return false;
        };
        let value = value.as_bytes();
        let scheme = b"bearer ";
        if value.len() <= scheme.len() || !value[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return false;
        }
        let presented = value[scheme.len()..].trim_ascii();
        self.hmac(presented).verify_slice(expected).is_ok()
    }
}

/// Where the receiver hands each event: the daemon's intake (which may refuse a routine event while
/// its queue is full), or a channel.
pub trait Sink: Send + Sync + 'static {
    /// `false` when the event cannot be taken now: the answer is 503 with `Retry-After`.
    fn offer(&self, heard: Heard) -> bool;
}

impl Sink for mpsc::Sender<Heard> {
    fn offer(&self, heard: Heard) -> bool {
        self.try_send(heard).is_ok()
    }
}

impl<S: Sink> Sink for Arc<S> {
    fn offer(&self, heard: Heard) -> bool {
        (**self).offer(heard)
    }
}

struct Receiver {
    token: Token,
    sink: Box<dyn Sink>,
    status: Arc<Status>,
    seen: Mutex<RecentIds>,
}

/// The push receiver's routes: `POST /events`. The daemon serves it on `--events-addr`.
pub fn router(token: Secret, sink: impl Sink, status: Arc<Status>) -> Router {
    status.turn_on(Via::Push);
    let receiver = Arc::new(Receiver {
        token: Token::new(&token),
        sink: Box::new(sink),
        status,
        seen: Mutex::new(RecentIds::new(SEEN_CAP)),
    });
    Router::new()
        .route("/events", post(events))
        .with_state(receiver)
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn refuse(status: StatusCode, error: &str) -> Response {
    answer(status, json!({ "error": error }))
}

/// The body, or the answer when it is too large or cannot be read.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Vec<u8>, Response> {
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is larger than {MAX_PUSH_BODY} bytes"),
        )
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_PUSH_BODY as u64) {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(announced.map_or(8192, |n| n as usize));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|_| refuse(StatusCode::BAD_REQUEST, "the body could not be read"))?;
        if out.len() + chunk.len() > MAX_PUSH_BODY {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// What one request's envelopes came to.
#[derive(Default)]
struct Tally {
    accepted: u64,
    duplicate: u64,
    ignored: u64,
    /// Envelopes not handed over because the channel was full or closed.
    refused: u64,
}

impl Receiver {
    fn count(&self, result: &'static str) {
        self.status.record(Via::Push, result);
    }

    fn take(&self, envelope: &Value, tally: &mut Tally) {
        let env = match parse_envelope(envelope) {
            Ok(e) => e,
            Err(why) => {
                tracing::debug!("pushed event ignored: {why}");
                self.count(why.label());
                tally.ignored += 1;
                return;
            }
        };
        let key = format!("{}\u{0}{}", env.source, env.id);
        // Held while handing over, so two copies arriving together are still one.
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(&key) {
            self.count(status::DUPLICATE);
            tally.duplicate += 1;
            return;
        }
        let change = match env.change() {
            Ok(c) => c,
            Err(why) => {
                seen.first_time(&key);
                tracing::debug!("pushed event ignored: {why}");
                self.count(why.label());
                tally.ignored += 1;
                return;
            }
        };
        let heard = Heard {
            change,
            via: Via::Push,
            account: None,
        };
        if self.sink.offer(heard) {
            seen.first_time(&key);
            self.count(status::ACCEPTED);
            tally.accepted += 1;
        } else {
            tally.refused += 1;
        }
    }
}

async fn events(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Body) -> Response {
    if !r.token.admits(&headers) {
        r.count(status::REJECTED_UNAUTHORIZED);
        let mut resp = refuse(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    }
    let bytes = match read_body(&headers, body).await {
        Ok(b) => b,
        Err(resp) => {
            r.count(if resp.status() == StatusCode::PAYLOAD_TOO_LARGE {
                status::REJECTED_TOO_LARGE
            } else {
                status::REJECTED_UNREADABLE
            });
            return resp;
        }
    };
    let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
        r.count(status::REJECTED_NOT_JSON);
        return refuse(StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    let mut tally = Tally::default();
    match &value {
        Value::Array(items) => items.iter().for_each(|v| r.take(v, &mut tally)),
        v => r.take(v, &mut tally),
    }
    if tally.refused > 0 {
        tracing::warn!(
            refused = tally.refused,
            "pushed events refused with 503: the daemon's event queue is full; EventBridge retries"
        );
        let mut resp = answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "busy: retry later", "accepted": tally.accepted, "refused": tally.refused}),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        return resp;
    }
    answer(
        StatusCode::ACCEPTED,
        json!({"accepted": tally.accepted, "duplicate": tally.duplicate, "ignored": tally.ignored}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use tower::ServiceExt;

    const TOKEN: &str = "s3cret-token";

    fn envelope(id: &str, event_name: &str) -> Value {
        json!({
            "specversion": "1.0", "id": id, "source": "acs.actiontrail",
            "type": "actiontrail:ActionTrail:ConsoleOperation",
            "aliyunaccountid": "1000000000000001", "aliyunregionid": "cn-hangzhou",
            "data": {
                "eventId": format!("ev-{id}"), "eventName": event_name,
                "eventType": "ConsoleOperation", "acsRegion": "cn-hangzhou",
                "requestParameters": {"SecurityGroupId": "sg-1", "InnerAccessPolicy": "Drop"},
                "userIdentity": {"type": "ram-user", "userName": "alice"}
            }
        })
    }

    struct Fixture {
        app: Router,
        heard: mpsc::Receiver<Heard>,
        status: Arc<Status>,
    }

    fn fixture(capacity: usize) -> Fixture {
        let (tx, heard) = mpsc::channel(capacity);
        let status = Arc::new(Status::new());
        Fixture {
            app: router(Secret::new(TOKEN), tx, status.clone()),
            heard,
            status,
        }
    }

    fn post(auth: Option<&str>, body: impl Into<Body>) -> Request<Body> {
        let mut b = Request::post("/events").header(header::CONTENT_TYPE, "application/json");
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(body.into()).unwrap()
    }

    fn bearer() -> String {
        format!("Bearer {TOKEN}")
    }

    async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String, HeaderMap) {
        let resp = app.clone().oneshot(req).await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned(), headers)
    }

    fn drain(heard: &mut mpsc::Receiver<Heard>) -> Vec<Heard> {
        let mut out = Vec::new();
        while let Ok(h) = heard.try_recv() {
            out.push(h);
        }
        out
    }

    fn count(status: &Status, result: &str) -> u64 {
        status
            .counts()
            .iter()
            .find(|((via, r), _)| *via == Via::Push && *r == result)
            .map_or(0, |(_, n)| *n)
    }

    #[tokio::test]
    async fn without_the_right_token_the_answer_is_401_and_nothing_is_read() {
        let mut f = fixture(8);
        let body = envelope("1", "ModifySecurityGroupPolicy").to_string();
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Bearer s3cret-token-longer"),
            Some("Bearer s3cret-toke"),
            Some("Basic czNjcmV0LXRva2Vu"),
            Some("s3cret-token"),
            Some("Bearer "),
        ] {
            let (status, text, headers) = send(&f.app, post(auth, body.clone())).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
            assert!(!text.contains(TOKEN), "{text}");
            assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
        }
        // Even a body that is not JSON, or too large, gets 401 first.
        let (status, _, _) = send(&f.app, post(Some("Bearer x"), "not json")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(drain(&mut f.heard).is_empty());
        // Each refusal is counted, and nothing else.
        assert_eq!(
            f.status.counts(),
            [((Via::Push, status::REJECTED_UNAUTHORIZED), 8)]
        );
        // The scheme's case does not matter.
        let (status, _, _) = send(&f.app, post(Some(&format!("bearer {TOKEN}")), body)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }

    #[tokio::test]
    async fn a_body_over_256_kib_is_413_with_or_without_a_content_length() {
        let f = fixture(8);
        let big = vec![b' '; 300 * 1024];
        let mut req = post(Some(&bearer()), big.clone());
        req.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(big.len()));
        let (status, text, _) = send(&f.app, req).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
        // Chunked: no Content-Length, 300 chunks of 1 KiB.
        let chunks = (0..300).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024]));
        let req = post(
            Some(&bearer()),
            Body::from_stream(futures::stream::iter(chunks)),
        );
        assert!(req.headers().get(header::CONTENT_LENGTH).is_none());
        let (status, _, _) = send(&f.app, req).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        // A body of exactly the limit is read: here an empty array padded with spaces.
        let mut at_limit = vec![b' '; MAX_PUSH_BODY];
        at_limit[0] = b'[';
        at_limit[MAX_PUSH_BODY - 1] = b']';
        let (status, _, _) = send(&f.app, post(Some(&bearer()), at_limit)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }

    #[tokio::test]
    async fn a_body_that_is_not_json_is_400() {
        let f = fixture(8);
        for body in ["not json", "{\"id\": ", "", "\u{0}"] {
            let (status, text, _) = send(&f.app, post(Some(&bearer()), body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
            assert!(text.contains("not JSON"), "{text}");
        }
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let (status, _, _) = send(&f.app, post(Some(&bearer()), deep)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "too deep for the parser");
    }

    #[tokio::test]
    async fn another_event_or_other_json_is_202_and_counted_as_ignored() {
        let mut f = fixture(8);
        let other = envelope("2", "CreateSecurityGroup").to_string();
        let (status, text, _) = send(&f.app, post(Some(&bearer()), other)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert!(text.contains("\"ignored\":1"), "{text}");
        assert_eq!(count(&f.status, "ignored_other_event"), 1);
        let mut failed = envelope("3", "ModifySecurityGroupPolicy");
        failed["data"]["errorCode"] = json!("Forbidden.RAM");
        let (status, _, _) = send(&f.app, post(Some(&bearer()), failed.to_string())).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(count(&f.status, "ignored_failed_call"), 1);
        for body in ["42", "{\"hello\": 1}", "[1, \"x\"]"] {
            let (status, _, _) = send(&f.app, post(Some(&bearer()), body)).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        }
        assert_eq!(count(&f.status, "ignored_malformed"), 4);
        assert!(drain(&mut f.heard).is_empty());
    }

    #[tokio::test]
    async fn a_duplicate_delivery_is_heard_once() {
        let mut f = fixture(8);
        let body = envelope("dup", "ModifySecurityGroupPolicy").to_string();
        for _ in 0..2 {
            let (status, _, _) = send(&f.app, post(Some(&bearer()), body.clone())).await;
            assert_eq!(status, StatusCode::ACCEPTED);
        }
        let heard = drain(&mut f.heard);
        assert_eq!(heard.len(), 1, "{heard:#?}");
        let h = &heard[0];
        assert_eq!((h.via, h.account.as_deref()), (Via::Push, None));
        assert_eq!(h.change.account_id.as_deref(), Some("1000000000000001"));
        assert_eq!(h.change.group_id.as_deref(), Some("sg-1"));
        assert_eq!(h.change.author.name.as_deref(), Some("alice"));
        assert_eq!(count(&f.status, status::ACCEPTED), 1);
        assert_eq!(count(&f.status, status::DUPLICATE), 1);
        // The same id from another source is another delivery.
        let mut other = envelope("dup", "ModifySecurityGroupPolicy");
        other["source"] = json!("acs.other");
        send(&f.app, post(Some(&bearer()), other.to_string())).await;
        assert_eq!(drain(&mut f.heard).len(), 1);
    }

    #[tokio::test]
    async fn an_array_of_two_envelopes_is_two_events() {
        let mut f = fixture(8);
        let body = json!([
            envelope("a", "ModifySecurityGroupPolicy"),
            envelope("b", "ModifySecurityGroupPolicy")
        ]);
        let (status, text, _) = send(&f.app, post(Some(&bearer()), body.to_string())).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{text}");
        let ids: Vec<String> = drain(&mut f.heard)
            .into_iter()
            .map(|h| h.change.author.event_id)
            .collect();
        assert_eq!(ids, ["ev-a", "ev-b"]);
    }

    #[tokio::test]
    async fn a_full_queue_is_503_with_retry_after_and_the_retry_delivers_the_rest() {
        let mut f = fixture(1);
        let body = json!([
            envelope("a", "ModifySecurityGroupPolicy"),
            envelope("b", "ModifySecurityGroupPolicy")
        ])
        .to_string();
        let (status, _, headers) = send(&f.app, post(Some(&bearer()), body.clone())).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::RETRY_AFTER], RETRY_AFTER_SECS.to_string());
        assert_eq!(drain(&mut f.heard).len(), 1, "the first one went through");
        // EventBridge retries the same body: the first is a duplicate, the second is heard now.
        let (status, _, _) = send(&f.app, post(Some(&bearer()), body)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let heard = drain(&mut f.heard);
        assert_eq!(heard.len(), 1);
        assert_eq!(heard[0].change.author.event_id, "ev-b");
        assert_eq!(count(&f.status, status::DUPLICATE), 1);
    }

    #[tokio::test]
    async fn the_simulators_eventbridge_push_over_loopback_is_heard_once_despite_duplicates() {
        use sgpolicy_sim::{ConsoleActor, EventBridgeConfig, PushTarget, Seed, Simulator};
        let (tx, mut heard) = mpsc::channel(8);
        let status = Arc::new(Status::new());
        let app = router(Secret::new(TOKEN), tx, status.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/events", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let seed =
            "securityGroups:\n  - {id: sg-1, region: cn-hangzhou, innerAccessPolicy: Accept}\n";
        let sim = Simulator::new(Seed::from_yaml(seed).expect("seed"));
        let target: PushTarget = serde_json::from_value(json!({
            "url": url, "token": TOKEN, "duplicateRate": 1.0, "retries": 0
        }))
        .expect("target");
        sim.set_eventbridge(EventBridgeConfig {
            targets: vec![target],
        })
        .expect("config");
        let event_id = sim
            .flip_in_console(
                "cn-hangzhou",
                "sg-1",
                sgpolicy_sim::Policy::Drop,
                &ConsoleActor::default(),
            )
            .expect("group exists");
        let h = tokio::time::timeout(std::time::Duration::from_secs(20), heard.recv())
            .await
            .expect("pushed in time")
            .expect("heard");
        assert_eq!(h.change.author.event_id, event_id);
        assert_eq!(h.change.account_id.as_deref(), Some("1000000000000001"));
        for _ in 0..2000 {
            if count(&status, status::DUPLICATE) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            count(&status, status::DUPLICATE),
            1,
            "the copy arrived and was dropped"
        );
        assert!(heard.try_recv().is_err(), "heard once");
        assert!(sim
            .deliveries()
            .iter()
            .all(|d| d.outcome == "delivered" && d.status == Some(202)));
    }
}
