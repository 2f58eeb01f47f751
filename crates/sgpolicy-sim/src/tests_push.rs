//! EventBridge on the simulator, against a receiver on 127.0.0.1: the CloudEvents envelope and its
//! bearer token, duplicates and losses as exact fractions, retries, filters, the delay, and the
//! admin paths. Tests wait for [`Simulator::deliveries_settled`], never for a time.

use super::tests::{call, send};
use super::*;
use axum::body::Body;
use axum::http::{HeaderMap, Request as HttpRequest};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};

/// What the receiver saw of one POST.
#[derive(Clone, Debug)]
pub(super) struct Got {
    pub(super) path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    pub(super) body: Value,
}

#[derive(Clone, Default)]
pub(super) struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    /// Answer 500 to this many requests first.
    fail_first: Arc<AtomicUsize>,
}

impl Receiver {
    pub(super) fn got(&self) -> Vec<Got> {
        self.got.lock().map(|g| g.clone()).unwrap_or_default()
    }

    fn at(&self, path: &str) -> Vec<Got> {
        self.got().into_iter().filter(|g| g.path == path).collect()
    }
}

/// A receiver on 127.0.0.1:0; returns it and its base URL.
pub(super) async fn receiver() -> (Receiver, String) {
    let r = Receiver::default();
    let state = r.clone();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .map(String::from)
                };
                if let Ok(mut g) = state.got.lock() {
                    g.push(Got {
                        path: uri.path().to_string(),
                        authorization: h("authorization"),
                        content_type: h("content-type"),
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    });
                }
                let failing = state
                    .fail_first
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if failing {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::NO_CONTENT
                }
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, url)
}

const SEED: &str = r#"
accessKeys:
  - {id: testid, secret: testsecret, userName: alice}
securityGroups:
  - {id: sg-web, region: cn-hangzhou, innerAccessPolicy: Accept}
  - {id: sg-db, region: cn-hangzhou, innerAccessPolicy: Drop}
  - {id: sg-web, region: cn-shanghai, innerAccessPolicy: Drop}
  - {id: sg-web, region: cn-hangzhou, innerAccessPolicy: Drop, account: "2222222222222222"}
"#;

fn sim_with(targets: Value) -> Simulator {
    let s = Simulator::new(Seed::from_yaml(SEED).expect("seed"));
    s.set_eventbridge(serde_json::from_value(json!({ "targets": targets })).expect("config"))
        .expect("valid targets");
    s
}

async fn write(s: &Simulator, region: &str, id: &str, policy: &str, token: &str) {
    let (st, v) = call(
        s,
        &[
            ("Action", "ModifySecurityGroupPolicy"),
            ("RegionId", region),
            ("SecurityGroupId", id),
            ("InnerAccessPolicy", policy),
            ("ClientToken", token),
        ],
    )
    .await;
    assert_eq!(st, 200, "{v}");
}

#[tokio::test]
async fn a_push_is_a_cloudevent_envelope_of_the_record_with_the_bearer_token() {
    let (r, base) = receiver().await;
    let s = sim_with(json!([{"url": format!("{base}/hook"), "token": "hook-secret"}]));
    write(&s, "cn-hangzhou", "sg-web", "Drop", "p-1").await;
    s.deliveries_settled().await;
    let got = r.got();
    assert_eq!(got.len(), 1, "{got:?}");
    let g = &got[0];
    assert_eq!(g.path, "/hook");
    assert_eq!(g.authorization.as_deref(), Some("Bearer hook-secret"));
    assert_eq!(
        g.content_type.as_deref(),
        Some("application/json;charset=utf-8")
    );
    let e = &g.body;
    assert_eq!(e["specversion"], "1.0");
    assert_eq!(e["source"], "acs.actiontrail");
    assert_eq!(e["type"], "actiontrail:ActionTrail:ApiCall");
    assert_eq!(e["datacontenttype"], "application/json;charset=utf-8");
    assert_eq!(e["aliyunaccountid"], DEFAULT_ACCOUNT);
    assert_eq!(e["aliyunregionid"], "cn-hangzhou");
    assert_eq!(e["aliyuneventbusname"], "default");
    assert_eq!(
        e["subject"],
        format!("acs.actiontrail:cn-hangzhou:{DEFAULT_ACCOUNT}:ModifySecurityGroupPolicy")
    );
    assert!(
        e["time"].as_str().and_then(auth::parse_timestamp).is_some(),
        "{e}"
    );
    assert!(e["aliyunpublishtime"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert!(e["id"]
        .as_str()
        .and_then(|i| uuid::Uuid::parse_str(i).ok())
        .is_some());
    assert_ne!(e["id"], e["data"]["eventId"], "the envelope has its own id");
    assert_eq!(e["data"], s.events()[0], "data is the ActionTrail record");
    let d = s.deliveries();
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].outcome.as_str(), d[0].status, d[0].attempt, d[0].copy),
        ("delivered", Some(204), 1, 1)
    );
    assert_eq!(
        d[0].event_id,
        s.events()[0]["eventId"].as_str().unwrap_or_default()
    );

    // A console flip is pushed as a ConsoleOperation; a missed one is not pushed at all.
    s.flip_in_console(
        "cn-hangzhou",
        "sg-db",
        Policy::Accept,
        &ConsoleActor::default(),
    )
    .expect("group");
    assert!(s.set_policy("cn-hangzhou", "sg-db", Policy::Drop));
    s.deliveries_settled().await;
    let got = r.got();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[1].body["type"],
        "actiontrail:ActionTrail:ConsoleOperation"
    );
}

#[tokio::test]
async fn duplicates_and_losses_are_exact_fractions() {
    let (r, base) = receiver().await;
    let s = sim_with(json!([
        {"url": format!("{base}/lossy"), "lossRate": 0.5},
        {"url": format!("{base}/dup"), "duplicateRate": 0.5},
        {"url": format!("{base}/plain")},
    ]));
    for i in 0..4 {
        let policy = if i % 2 == 0 { "Drop" } else { "Accept" };
        write(&s, "cn-hangzhou", "sg-web", policy, &format!("t-{i}")).await;
    }
    s.deliveries_settled().await;
    let event_ids: Vec<String> = s
        .events()
        .iter()
        .map(|e| e["eventId"].as_str().unwrap_or_default().to_string())
        .collect();
    let data_ids = |gs: &[Got]| -> Vec<String> {
        gs.iter()
            .map(|g| {
                g.body["data"]["eventId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    };
    // Every second event is lost: the first and third arrive, once each.
    let lossy = r.at("/lossy");
    assert_eq!(
        data_ids(&lossy),
        [event_ids[0].clone(), event_ids[2].clone()]
    );
    let lost: Vec<_> = s
        .deliveries()
        .into_iter()
        .filter(|d| d.outcome == "lost")
        .collect();
    assert_eq!(lost.len(), 2);
    assert!(lost
        .iter()
        .all(|d| d.url.ends_with("/lossy") && d.attempt == 0));
    assert_eq!(
        lost.iter().map(|d| d.event_id.clone()).collect::<Vec<_>>(),
        [event_ids[1].clone(), event_ids[3].clone()]
    );
    // Every second event arrives twice, with the same envelope id.
    let dup = r.at("/dup");
    assert_eq!(dup.len(), 6, "{dup:?}");
    let mut per_id: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for g in &dup {
        per_id
            .entry(g.body["id"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(
                g.body["data"]["eventId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
    }
    assert_eq!(per_id.len(), 4, "four envelopes");
    let twice: Vec<&String> = per_id
        .values()
        .filter(|v| v.len() == 2)
        .map(|v| &v[0])
        .collect();
    assert_eq!(twice.len(), 2);
    assert!(twice.contains(&&event_ids[1]) && twice.contains(&&event_ids[3]));
    let copies = s.deliveries().iter().filter(|d| d.copy == 2).count();
    assert_eq!(copies, 2);
    // Without either, exactly once each, in no particular order.
    let mut plain = data_ids(&r.at("/plain"));
    plain.sort();
    let mut want = event_ids.clone();
    want.sort();
    assert_eq!(plain, want);
    // No token configured: no Authorization header.
    assert!(r.got().iter().all(|g| g.authorization.is_none()));
}

#[tokio::test]
async fn a_failing_target_is_retried_and_rules_filter_what_it_gets() {
    let (r, base) = receiver().await;
    let s = sim_with(json!([
        {"url": format!("{base}/retry"), "retries": 3, "retryDelayMs": 0, "eventTypes": ["ApiCall"]},
        {"url": format!("{base}/console"), "eventTypes": ["ConsoleOperation"], "retries": 0},
        {"url": format!("{base}/shanghai"), "regions": ["cn-shanghai"], "retries": 0},
        {"url": format!("{base}/other"), "account": "2222222222222222", "retries": 0},
        {"url": format!("{base}/names"), "eventNames": ["DeleteSecurityGroup"], "retries": 0},
        {"url": format!("{base}/giveup"), "retries": 1, "retryDelayMs": 0, "regions": ["cn-shanghai"]},
    ]));
    r.fail_first.store(2, Ordering::SeqCst);
    write(&s, "cn-hangzhou", "sg-web", "Drop", "f-1").await;
    s.deliveries_settled().await;
    let tries: Vec<_> = s
        .deliveries()
        .into_iter()
        .map(|d| (d.attempt, d.outcome, d.status))
        .collect();
    assert_eq!(
        tries,
        [
            (1, "failed".to_string(), Some(500)),
            (2, "failed".to_string(), Some(500)),
            (3, "delivered".to_string(), Some(204)),
        ]
    );
    assert_eq!(
        r.at("/retry").len(),
        3,
        "at-least-once: the target saw every attempt"
    );

    s.flip_in_console_in(
        "2222222222222222",
        "cn-hangzhou",
        "sg-web",
        Policy::Accept,
        &ConsoleActor::default(),
    )
    .expect("group");
    // From now on the receiver refuses everything.
    r.fail_first.store(usize::MAX, Ordering::SeqCst);
    write(&s, "cn-shanghai", "sg-web", "Accept", "f-2").await;
    s.deliveries_settled().await;
    assert_eq!(r.at("/console").len(), 1, "the console flip only");
    assert_eq!(r.at("/other").len(), 1, "the other account's flip only");
    assert_eq!(
        r.at("/other")[0].body["aliyunaccountid"],
        "2222222222222222"
    );
    assert!(r.at("/names").is_empty());
    assert_eq!(
        r.at("/retry").len(),
        3 + 4,
        "the shanghai write is an ApiCall: 1 + 3 retries"
    );
    assert_eq!(r.at("/shanghai").len(), 1, "no retries configured");
    let giveup: Vec<_> = s
        .deliveries()
        .into_iter()
        .filter(|d| d.url.ends_with("/giveup"))
        .map(|d| (d.attempt, d.outcome))
        .collect();
    assert_eq!(
        giveup,
        [(1, "failed".to_string()), (2, "failed".to_string())]
    );
}

#[tokio::test]
async fn a_delayed_push_arrives_no_sooner_than_its_delay() {
    let (r, base) = receiver().await;
    let s = sim_with(json!([{"url": format!("{base}/late"), "delayMs": 300}]));
    let before = std::time::Instant::now();
    write(&s, "cn-hangzhou", "sg-web", "Drop", "d-1").await;
    s.deliveries_settled().await;
    assert!(before.elapsed() >= std::time::Duration::from_millis(300));
    assert_eq!(r.at("/late").len(), 1);
}

#[tokio::test]
async fn eventbridge_admin_paths_check_targets_and_hide_tokens() {
    let (_r, base) = receiver().await;
    let s = Simulator::new(Seed::from_yaml(SEED).expect("seed"));
    let post = |body: String| {
        HttpRequest::post("/_sim/eventbridge")
            .body(Body::from(body))
            .expect("req")
    };
    let get = |uri: &str| {
        HttpRequest::get(uri.to_string())
            .body(Body::empty())
            .expect("req")
    };
    for bad in [
        json!({"targets": [{"url": "http://example.com/hook"}]}),
        json!({"targets": [{"url": "http://localhost:1/hook"}]}),
        json!({"targets": [{"url": "https://127.0.0.1:1/hook"}]}),
        json!({"targets": [{"url": "http://127.0.0.1:1/", "lossRate": 2}]}),
        json!({"targets": [{"url": "http://127.0.0.1:1/", "tokn": "x"}]}),
        json!({"target": []}),
    ] {
        let (st, v) = send(&s, post(bad.to_string())).await;
        assert_eq!(st, 400, "{bad}: {v}");
    }
    let ok = json!({"targets": [{"url": format!("{base}/h"), "token": "t0p", "delayMs": 5}]});
    let (st, v) = send(&s, post(ok.to_string())).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["targets"][0]["token"], "<redacted>");
    let (_, v) = send(&s, get("/_sim/eventbridge")).await;
    assert_eq!(v["targets"][0]["url"], format!("{base}/h"));
    assert_eq!(v["targets"][0]["retries"], 3, "defaults are shown");
    assert!(!v.to_string().contains("t0p"));
    assert_eq!(s.eventbridge().targets[0].token.as_deref(), Some("t0p"));
    write(&s, "cn-hangzhou", "sg-web", "Drop", "a-1").await;
    s.deliveries_settled().await;
    let (_, v) = send(&s, get("/_sim/eventbridge/deliveries")).await;
    assert_eq!(v[0]["outcome"], "delivered", "{v}");
    assert_eq!(v[0]["eventId"], s.events()[0]["eventId"]);
    let (st, v) = send(&s, post("{}".into())).await;
    assert_eq!((st, v["targets"].as_array().map(Vec::len)), (200, Some(0)));

    // The seed is checked the same way.
    let seed = |t: &str| Seed::from_yaml(&format!("eventBridge:\n  targets:\n    - {t}\n"));
    assert!(seed("{url: \"http://127.0.0.1:9/x\", token: abc, lossRate: 0.25}").is_ok());
    assert!(seed("{url: \"http://10.1.2.3:9/x\"}").is_err());
    assert!(seed("{url: \"http://127.0.0.1:9/x\", loss: 1}").is_err());
}
