//! Tests of ModifySecurityGroupPolicy's error table, ClientToken semantics and injected faults.

use super::tests::{call, code, query, signed, sim};
use super::*;
use serde_json::Value;

const M: &str = "ModifySecurityGroupPolicy";

/// Parameters, expected status, code and exact message.
type ModifyCase<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str, &'a str);

fn modify<'a>(region: &'a str, id: &'a str, policy: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("Action", M),
        ("RegionId", region),
        ("SecurityGroupId", id),
        ("InnerAccessPolicy", policy),
    ]
}

#[tokio::test]
async fn modify_follows_the_error_table_exactly() {
    let s = sim();
    let cases: Vec<ModifyCase> = vec![
        (vec![("Action", M), ("SecurityGroupId", "sg-web"), ("InnerAccessPolicy", "Drop")], 400, "MissingParamter.RegionId", "The RegionId should not be null."),
        (modify("cn-hangzhou", "sg web", "Drop"), 400, "InvalidSecurityGroupId.Malformed", "The SecurityGroupId is invalid. Only letters, numbers and underscores are supported. Maximum length is 100 characters."),
        (modify("cn-hangzhou", "sg-web", "Allow"), 400, "InvalidPolicy.Malformed", "The Policy is invalid. Only 'Accept' and 'Drop' are supported. Ignore case."),
        (modify("cn-hangzhou", "sg-nat", "Drop"), 403, "InvalidOperation.ResourceManagedByCloudProduct", "The specified SecurityGroup \"sg-nat\" has been managed by serviceID \"1679259531804325\"; product \"natgw\"."),
        (modify("cn-hangzhou", "sg-nope", "Drop"), 404, "InvalidSecurityGroupId.NotFound", "The specified SecurityGroupId does not exist."),
        (modify("cn-shanghai", "sg-db", "Drop"), 404, "InvalidSecurityGroupId.NotFound", "The specified SecurityGroupId does not exist."),
        (modify("cn-hangzhou", "sg-ent", "Drop"), 404, "InvalidParameter.InnerAccessPolicy", "The InnerAccessPolicy attribute of enterprise level security group can't be modified."),
    ];
    for (p, status, want, msg) in cases {
        let (st, v) = call(&s, &p).await;
        assert_eq!(
            (st, code(&v), v["Message"].as_str().unwrap_or("")),
            (status, want, msg),
            "{p:?}"
        );
    }
    assert_eq!(s.policy_of("cn-hangzhou", "sg-nat"), Some(Policy::Accept));
    let long = "x".repeat(65);
    let mut p = modify("cn-hangzhou", "sg-web", "Drop");
    p.push(("ClientToken", &long));
    assert_eq!(call(&s, &p).await.0, 400);
}

#[tokio::test]
async fn modify_changes_the_group_case_insensitively_and_hyphens_or_underscores_are_ids() {
    let s = sim();
    let (st, v) = call(&s, &modify("cn-hangzhou", "sg-web", "dROP")).await;
    assert_eq!(st, 200, "{v}");
    let keys: Vec<&String> = v
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["RequestId"]);
    assert_eq!(s.policy_of("cn-hangzhou", "sg-web"), Some(Policy::Drop));
    assert_eq!(
        s.policy_of("cn-shanghai", "sg-web"),
        Some(Policy::Drop),
        "other region untouched"
    );
    assert_eq!(
        call(&s, &modify("cn-hangzhou", "sg_under_1", "Drop"))
            .await
            .0,
        200
    );
    let c = s.calls();
    assert!(c[0].effective && !c[0].replayed && c[0].group_id.as_deref() == Some("sg-web"));
    let (st, _) = call(&s, &modify("cn-hangzhou", "sg-web", "Drop")).await;
    assert_eq!(st, 200);
    assert!(!s.calls()[2].effective, "already Drop: not effective");
}

#[tokio::test]
async fn a_replayed_token_returns_the_first_request_id_and_changes_nothing() {
    let s = sim();
    let mut p = modify("cn-hangzhou", "sg-web", "Drop");
    p.push(("ClientToken", "tok-1"));
    let (_, first) = call(&s, &p).await;
    // Someone flips it back in the console; the replay must not repair it.
    assert!(s.set_policy("cn-hangzhou", "sg-web", Policy::Accept));
    let mut q = modify("cn-hangzhou", "sg-web", "drop");
    q.push(("ClientToken", "tok-1"));
    // Another key of the same account shares the token namespace.
    q.push(("AccessKeyId", "otherid"));
    let qs = query(&signed("POST", "othersecret", &q));
    let req = axum::http::Request::post(format!("/?{qs}"))
        .body(axum::body::Body::empty())
        .expect("req");
    let (st, again) = super::tests::send(&s, req).await;
    assert_eq!(st, 200);
    assert_eq!(first["RequestId"], again["RequestId"]);
    assert_eq!(s.policy_of("cn-hangzhou", "sg-web"), Some(Policy::Accept));
    let c = s.calls();
    assert!(c[1].replayed && !c[1].effective && c[1].access_key_id == "otherid");
    let mut r = modify("cn-hangzhou", "sg-web", "Accept");
    r.push(("ClientToken", "tok-1"));
    let (st, v) = call(&s, &r).await;
    assert_eq!((st, code(&v)), (400, "IdempotentParameterMismatch"));
    let mut r = modify("cn-hangzhou", "sg-db", "Drop");
    r.push(("ClientToken", "tok-1"));
    assert_eq!(code(&call(&s, &r).await.1), "IdempotentParameterMismatch");
    // A token whose first use failed is not remembered.
    let mut r = modify("cn-hangzhou", "sg-nope", "Drop");
    r.push(("ClientToken", "tok-2"));
    assert_eq!(call(&s, &r).await.0, 404);
    let mut r = modify("cn-hangzhou", "sg-db", "Accept");
    r.push(("ClientToken", "tok-2"));
    assert_eq!(call(&s, &r).await.0, 200);
}

#[tokio::test]
async fn scripted_failures_can_apply_first_and_throttling_refuses_excess() {
    let s = sim();
    s.set_faults(
        serde_json::from_str(r#"{"failNext":[{"action":"ModifySecurityGroupPolicy","status":503,"code":"ServiceUnavailable","message":"later","applyFirst":true}]}"#)
            .expect("cfg"),
    );
    assert_eq!(
        call(
            &s,
            &[
                ("Action", "DescribeSecurityGroups"),
                ("RegionId", "cn-hangzhou")
            ]
        )
        .await
        .0,
        200
    );
    let mut p = modify("cn-hangzhou", "sg-web", "Drop");
    p.push(("ClientToken", "lost-1"));
    let (st, v) = call(&s, &p).await;
    assert_eq!(
        (st, code(&v), v["Message"].as_str()),
        (503, "ServiceUnavailable", Some("later"))
    );
    assert_eq!(
        s.policy_of("cn-hangzhou", "sg-web"),
        Some(Policy::Drop),
        "applied although it failed"
    );
    let (st, _) = call(&s, &p).await;
    assert_eq!(st, 200);
    let c = s.calls();
    assert!(c[1].effective && c[1].fault.as_deref() == Some("failNext"));
    assert!(c[2].replayed && !c[2].effective);
    s.set_faults(
        serde_json::from_str(r#"{"throttle":{"DescribeSecurityGroups":{"perSecond":1}}}"#)
            .expect("cfg"),
    );
    let d = [
        ("Action", "DescribeSecurityGroups"),
        ("RegionId", "cn-hangzhou"),
    ];
    assert_eq!(call(&s, &d).await.0, 200);
    let (st, v) = call(&s, &d).await;
    assert_eq!((st, code(&v)), (400, "Throttling.User"));
    assert_eq!(v["Message"], "Request was denied due to user flow control.");
    s.set_faults(FaultConfig::default());
    assert_eq!(call(&s, &d).await.0, 200);
}

/// Sends one raw HTTP/1.1 request over TCP and returns everything the server wrote before closing.
async fn raw_exchange(addr: std::net::SocketAddr, path_and_query: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("POST {path_and_query} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    c.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), c.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_drop_fault_closes_the_connection_without_any_response_after_applying() {
    let s = sim();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(s.clone().serve(listener, async move {
        let _ = rx.await;
    }));
    s.set_faults(serde_json::from_str(r#"{"loseResponses":1}"#).expect("cfg"));
    let mut p = modify("cn-hangzhou", "sg-web", "Drop");
    p.push(("ClientToken", "t-drop"));
    let got = raw_exchange(
        addr,
        &format!("/?{}", query(&signed("POST", "testsecret", &p))),
    )
    .await;
    assert_eq!(got, "", "no response bytes at all");
    assert_eq!(s.policy_of("cn-hangzhou", "sg-web"), Some(Policy::Drop));
    let got = raw_exchange(
        addr,
        &format!("/?{}", query(&signed("POST", "testsecret", &p))),
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    let c = s.calls();
    assert_eq!(
        (c[0].status, c[0].fault.as_deref(), c[0].effective),
        (0, Some("drop"), true)
    );
    assert!(c[1].replayed);
    let _ = tx.send(());
    let _ = server.await;
}

#[tokio::test]
async fn concurrent_requests_with_one_token_apply_once() {
    let s = sim();
    let mut handles = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let mut p = modify("cn-hangzhou", "sg-web", "Drop");
            p.push(("ClientToken", "same"));
            call(&s, &p).await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for h in handles {
        let (st, v): (u16, Value) = h.await.expect("task");
        assert_eq!(st, 200);
        ids.insert(v["RequestId"].as_str().unwrap_or("").to_string());
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(s.calls().iter().filter(|c| c.effective).count(), 1);
}
