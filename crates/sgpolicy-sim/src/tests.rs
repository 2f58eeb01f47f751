//! In-process tests of the simulator's HTTP surface, signed by a tiny test-only signer.
//!
//! The signer here uses the `percent-encoding` crate rather than `auth::percent_encode`, so a shared
//! canonicalisation bug cannot make both sides agree.

use super::*;
use axum::body::Body;
use axum::http::Request as HttpRequest;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use sha1::Sha1;
use tower::ServiceExt;

const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub(super) const SEED: &str = r#"
accessKeys:
  - {id: testid, secret: testsecret}
  - {id: otherid, secret: othersecret}
  - {id: stsid, secret: stssecret, securityToken: the-token}
securityGroups:
  - {id: sg-web, region: cn-hangzhou, innerAccessPolicy: Accept, vpcId: vpc-1, name: web, tags: {env: prod, team: a}}
  - {id: sg-db, region: cn-hangzhou, innerAccessPolicy: Drop, vpcId: vpc-1, name: db, tags: {env: prod, team: b}}
  - {id: sg-ent, region: cn-hangzhou, innerAccessPolicy: Accept, type: enterprise, tags: {env: dev}}
  - {id: sg-nat, region: cn-hangzhou, innerAccessPolicy: Accept, serviceManaged: true, serviceId: "1679259531804325"}
  - {id: sg_under_1, region: cn-hangzhou, innerAccessPolicy: Accept, vpcId: vpc-2}
  - id: sg-web
    region: cn-shanghai
    innerAccessPolicy: Drop
    permissions:
      - {Direction: ingress, IpProtocol: TCP, PortRange: 22/22, SourceCidrIp: 10.0.0.0/8}
      - {Direction: egress, IpProtocol: TCP, PortRange: 443/443, DestCidrIp: 10.0.0.0/8}
"#;

pub(super) fn sim() -> Simulator {
    Simulator::new(Seed::from_yaml(SEED).expect("test seed"))
}

pub(super) fn enc(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// The common parameters a client adds, with a fresh nonce and the current time.
pub(super) fn common() -> Vec<(String, String)> {
    vec![
        ("AccessKeyId".into(), "testid".into()),
        ("Format".into(), "JSON".into()),
        ("Version".into(), "2014-05-26".into()),
        ("SignatureMethod".into(), "HMAC-SHA1".into()),
        ("SignatureVersion".into(), "1.0".into()),
        ("SignatureNonce".into(), uuid::Uuid::new_v4().to_string()),
        (
            "Timestamp".into(),
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ),
    ]
}

/// Appends the Signature over exactly `all`.
pub(super) fn sign_all(
    method: &str,
    secret: &str,
    mut all: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let mut pairs: Vec<String> = all
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    pairs.sort();
    let sts = format!("{method}&%2F&{}", enc(&pairs.join("&")));
    let mut mac = Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes()).expect("hmac key");
    mac.update(sts.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    all.push(("Signature".into(), sig));
    all
}

/// Signs `params` plus the common ones (a test's own value replaces a common one).
pub(super) fn signed(method: &str, secret: &str, params: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all = common();
    for (k, v) in params {
        all.retain(|(n, _)| n != k);
        all.push((k.to_string(), v.to_string()));
    }
    sign_all(method, secret, all)
}

pub(super) fn query(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Sends a raw request to the router; returns status and parsed JSON body.
pub(super) async fn send(sim: &Simulator, req: HttpRequest<Body>) -> (u16, Value) {
    let resp = sim.router().oneshot(req).await.expect("infallible router");
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A signed POST-with-query call, as the Python SDKs send it.
pub(super) async fn call(sim: &Simulator, params: &[(&str, &str)]) -> (u16, Value) {
    let q = query(&signed("POST", "testsecret", params));
    let req = HttpRequest::post(format!("/?{q}"))
        .body(Body::empty())
        .expect("request");
    send(sim, req).await
}

/// One table-driven case: parameters, expected status and code.
/// An access key for a test: id, secret and (for an STS session) its security token.
pub(super) type Key<'a> = (&'a str, &'a str, Option<&'a str>);

/// A signed POST-with-query call by `key`, with extra headers (Host, User-Agent).
pub(super) async fn call_with(
    s: &Simulator,
    key: Key<'_>,
    headers: &[(&str, &str)],
    params: &[(&str, &str)],
) -> (u16, Value) {
    let mut p: Vec<(&str, &str)> = vec![("AccessKeyId", key.0)];
    if let Some(t) = key.2 {
        p.push(("SecurityToken", t));
    }
    p.extend_from_slice(params);
    let q = query(&signed("POST", key.1, &p));
    let mut req = HttpRequest::post(format!("/?{q}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(s, req.body(Body::empty()).expect("request")).await
}

/// A signed call by `key`.
pub(super) async fn call_as(s: &Simulator, key: Key<'_>, params: &[(&str, &str)]) -> (u16, Value) {
    call_with(s, key, &[], params).await
}

/// An unsigned POST of `body` to an admin path.
pub(super) fn admin_post(uri: &str, body: &str) -> HttpRequest<Body> {
    HttpRequest::post(uri.to_string())
        .body(Body::from(body.to_string()))
        .expect("req")
}

pub(super) type Case<'a> = (&'a [(&'a str, &'a str)], u16, &'a str);

pub(super) fn code(v: &Value) -> &str {
    v["Code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn get_post_query_and_post_form_are_all_accepted() {
    let s = sim();
    let p = [
        ("Action", "DescribeSecurityGroupAttribute"),
        ("RegionId", "cn-hangzhou"),
        ("SecurityGroupId", "sg-web"),
    ];
    let q = query(&signed("GET", "testsecret", &p));
    let (st, v) = send(
        &s,
        HttpRequest::get(format!("/?{q}"))
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(
        (st, v["InnerAccessPolicy"].as_str()),
        (200, Some("Accept")),
        "{v}"
    );
    let (st, _) = call(&s, &p).await;
    assert_eq!(st, 200);
    // Terraform: common parameters in the query, business parameters in a form body.
    let all = signed("POST", "testsecret", &p);
    let (body, common): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|(k, _)| k == "RegionId" || k == "SecurityGroupId");
    let req = HttpRequest::post(format!("/?{}", query(&common)))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-acs-action", "Ignored")
        .body(Body::from(query(&body)))
        .expect("req");
    let (st, v) = send(&s, req).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(s.calls().len(), 3);
    assert!(s
        .calls()
        .iter()
        .all(|c| c.status == 200 && c.access_key_id == "testid"));
}

#[tokio::test]
async fn lower_case_json_format_gets_json_and_missing_format_gets_xml() {
    let s = sim();
    let p = [
        ("Action", "DescribeSecurityGroups"),
        ("RegionId", "cn-hangzhou"),
        ("Format", "json"),
    ];
    assert_eq!(call(&s, &p).await.0, 200);
    let mut all = common();
    all.retain(|(k, _)| k != "Format");
    all.push(("Action".into(), "DescribeSecurityGroups".into()));
    all.push(("RegionId".into(), "cn-hangzhou".into()));
    let q = query(&sign_all("POST", "testsecret", all));
    let resp = s
        .router()
        .oneshot(
            HttpRequest::post(format!("/?{q}"))
                .body(Body::empty())
                .expect("req"),
        )
        .await
        .expect("resp");
    assert_eq!(resp.status(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(ct.starts_with("text/xml"), "{ct}");
    let text = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    assert!(String::from_utf8_lossy(&text).contains("<DescribeSecurityGroupsResponse>"));
}

#[tokio::test]
async fn signature_errors_carry_codes_statuses_and_the_string_to_sign() {
    let s = sim();
    let p = [
        ("Action", "DescribeSecurityGroups"),
        ("RegionId", "cn-hangzhou"),
    ];
    let q = query(&signed("POST", "wrong", &p));
    let (st, v) = send(
        &s,
        HttpRequest::post(format!("/?{q}"))
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!((st, code(&v)), (400, "SignatureDoesNotMatch"));
    let msg = v["Message"].as_str().unwrap_or("");
    assert!(msg.starts_with("Specified signature is not matched with our calculation. server string to sign is:POST&%2F&"));
    assert_eq!(v["HostId"], "ecs.cn-hangzhou.aliyuncs.com");
    assert!(v["Recommend"]
        .as_str()
        .unwrap_or("")
        .starts_with("https://api.aliyun.com/troubleshoot?q=SignatureDoesNotMatch"));
    let rid = v["RequestId"].as_str().unwrap_or("");
    assert!(rid.len() == 36 && rid == rid.to_uppercase());
    // The method is part of the string to sign: a GET-signed request sent as POST fails.
    let q = query(&signed("GET", "testsecret", &p));
    let (st, v) = send(
        &s,
        HttpRequest::post(format!("/?{q}"))
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!((st, code(&v)), (400, "SignatureDoesNotMatch"));
    let (st, v) = call(
        &s,
        &[
            ("Action", "DescribeSecurityGroups"),
            ("AccessKeyId", "nobody"),
        ],
    )
    .await;
    assert_eq!((st, code(&v)), (404, "InvalidAccessKeyId.NotFound"));
    let old = (chrono::Utc::now() - chrono::Duration::minutes(16))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let (st, v) = call(
        &s,
        &[("Action", "DescribeSecurityGroups"), ("Timestamp", &old)],
    )
    .await;
    assert_eq!((st, code(&v)), (400, "InvalidTimeStamp.Expired"));
    let (st, v) = call(
        &s,
        &[
            ("Action", "DescribeSecurityGroups"),
            ("Timestamp", "2024-13-01T00:00:00Z"),
        ],
    )
    .await;
    assert_eq!((st, code(&v)), (400, "IllegalTimestamp"));
    let mut no_sig = signed("POST", "testsecret", &p);
    no_sig.retain(|(k, _)| k != "Signature");
    let (st, v) = send(
        &s,
        HttpRequest::post(format!("/?{}", query(&no_sig)))
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!((st, code(&v)), (400, "IncompleteSignature"));
    let (st, v) = call(&s, &[("Action", "DeleteEverything")]).await;
    assert_eq!((st, code(&v)), (404, "InvalidAction.NotFound"));
    let calls = s.calls();
    assert_eq!(calls.len(), 7, "rejected requests are logged too");
    assert_eq!(calls[0].code.as_deref(), Some("SignatureDoesNotMatch"));
}

#[tokio::test]
async fn a_reused_nonce_is_refused() {
    let s = sim();
    let q = query(&signed(
        "POST",
        "testsecret",
        &[
            ("Action", "DescribeSecurityGroups"),
            ("RegionId", "cn-hangzhou"),
        ],
    ));
    let req = || {
        HttpRequest::post(format!("/?{q}"))
            .body(Body::empty())
            .expect("req")
    };
    assert_eq!(send(&s, req()).await.0, 200);
    let (st, v) = send(&s, req()).await;
    assert_eq!((st, code(&v)), (400, "SignatureNonceUsed"));
}

#[tokio::test]
async fn sts_keys_need_their_token() {
    let s = sim();
    let p = [
        ("Action", "DescribeSecurityGroups"),
        ("RegionId", "cn-hangzhou"),
        ("AccessKeyId", "stsid"),
    ];
    let q = query(&signed("POST", "stssecret", &p));
    let (st, v) = send(
        &s,
        HttpRequest::post(format!("/?{q}"))
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!((st, code(&v)), (400, "MissingSecurityToken"));
    let mut p2 = p.to_vec();
    p2.push(("SecurityToken", "the-token"));
    let q = query(&signed("POST", "stssecret", &p2));
    let (st, _) = send(
        &s,
        HttpRequest::post(format!("/?{q}"))
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn admin_paths_list_flip_and_clear() {
    let s = sim();
    let post = admin_post;
    let (st, v) = send(
        &s,
        post(
            "/_sim/groups/cn-hangzhou/sg-web",
            r#"{"innerAccessPolicy":"drop"}"#,
        ),
    )
    .await;
    assert_eq!((st, v["innerAccessPolicy"].as_str()), (200, Some("Drop")));
    assert_eq!(s.policy_of("cn-hangzhou", "sg-web"), Some(Policy::Drop));
    assert_eq!(
        send(
            &s,
            post(
                "/_sim/groups/cn-hangzhou/sg-nope",
                r#"{"innerAccessPolicy":"Drop"}"#
            )
        )
        .await
        .0,
        404
    );
    assert_eq!(
        send(
            &s,
            post("/_sim/groups/cn-hangzhou/sg-web", r#"{"policy":"Drop"}"#)
        )
        .await
        .0,
        400
    );
    let (_, v) = send(
        &s,
        HttpRequest::get("/_sim/groups")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(v.as_array().map(Vec::len), Some(6));
    call(
        &s,
        &[
            ("Action", "DescribeSecurityGroups"),
            ("RegionId", "cn-hangzhou"),
        ],
    )
    .await;
    let (_, v) = send(
        &s,
        HttpRequest::get("/_sim/calls")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(v[0]["action"], "DescribeSecurityGroups");
    assert_eq!(v[0]["method"], "POST");
    let (_, v) = send(
        &s,
        HttpRequest::delete("/_sim/calls")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(v["cleared"], 1);
    assert!(s.calls().is_empty());
    assert_eq!(
        send(
            &s,
            HttpRequest::get("/elsewhere")
                .body(Body::empty())
                .expect("req")
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn a_group_created_through_the_admin_path_is_listed_and_a_duplicate_or_bad_one_is_refused() {
    let s = sim();
    let group = r#"{"id":"sg-new","region":"cn-hangzhou","innerAccessPolicy":"Accept","vpcId":"vpc-9","name":"new-1","tags":{"env":"prod"}}"#;
    let (st, v) = send(&s, admin_post("/_sim/groups", group)).await;
    assert_eq!((st, v["id"].as_str()), (201, Some("sg-new")));
    assert_eq!(send(&s, admin_post("/_sim/groups", group)).await.0, 409);
    let bad = r#"{"id":"sg-bad","region":"cn-hangzhou","innerAccessPolicy":"Maybe"}"#;
    assert_eq!(send(&s, admin_post("/_sim/groups", bad)).await.0, 400);
    let (_, v) = call(
        &s,
        &[
            ("Action", "DescribeSecurityGroups"),
            ("RegionId", "cn-hangzhou"),
            ("VpcId", "vpc-9"),
        ],
    )
    .await;
    let listed = &v["SecurityGroups"]["SecurityGroup"];
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(listed[0]["SecurityGroupName"], "new-1");
    assert_eq!(listed[0]["Tags"]["Tag"][0]["TagKey"], "env");
    assert_eq!(s.policy_of("cn-hangzhou", "sg-new"), Some(Policy::Accept));
}

#[tokio::test]
async fn calls_are_counted_apart_from_the_log_which_can_be_cleared() {
    let s = sim();
    s.set_faults(
        serde_json::from_str(r#"{"throttle":{"DescribeSecurityGroups":{"perMinute":1}}}"#)
            .expect("cfg"),
    );
    let describe = [
        ("Action", "DescribeSecurityGroups"),
        ("RegionId", "cn-hangzhou"),
    ];
    assert_eq!(call(&s, &describe).await.0, 200);
    let (st, v) = call(&s, &describe).await;
    assert_eq!(
        (st, code(&v)),
        (400, "Throttling.User"),
        "the minute's quota"
    );
    let write = [
        ("Action", "ModifySecurityGroupPolicy"),
        ("RegionId", "cn-hangzhou"),
        ("SecurityGroupId", "sg-web"),
        ("InnerAccessPolicy", "Drop"),
        ("ClientToken", "tok-1"),
    ];
    assert_eq!(call(&s, &write).await.0, 200);
    assert_eq!(call(&s, &write).await.0, 200, "replayed");
    assert_eq!(call(&s, &[("Action", "DescribeRegions")]).await.0, 404);
    let clear = HttpRequest::delete("/_sim/calls")
        .body(Body::empty())
        .expect("req");
    assert_eq!(send(&s, clear).await.1["cleared"], 5);
    let read = [
        ("Action", "DescribeSecurityGroupAttribute"),
        ("RegionId", "cn-hangzhou"),
        ("SecurityGroupId", "sg-web"),
    ];
    assert_eq!(call(&s, &read).await.0, 200);
    assert_eq!(s.calls().len(), 1, "the log holds what came after clearing");

    let c = s.call_counts();
    assert_eq!(c.total, 6, "{c:?}");
    let by_action: Vec<(&str, u64)> = c.by_action.iter().map(|(a, n)| (a.as_str(), *n)).collect();
    assert_eq!(
        by_action,
        [
            (OTHER_ACTION, 1),
            ("DescribeSecurityGroupAttribute", 1),
            ("DescribeSecurityGroups", 2),
            ("ModifySecurityGroupPolicy", 2),
        ]
    );
    assert_eq!(c.of_fault("throttle"), 1);
    assert_eq!(c.by_fault.len(), 1);
    assert_eq!((c.effective, c.replayed), (1, 1));
    let bucket = format!("{DEFAULT_ACCOUNT}/cn-hangzhou");
    assert_eq!(
        c.by_bucket.keys().collect::<Vec<_>>(),
        [&bucket],
        "the region-less DescribeRegions counts in no bucket"
    );
    assert_eq!(
        c.of_bucket(DEFAULT_ACCOUNT, "cn-hangzhou", "DescribeSecurityGroups"),
        2
    );
    assert_eq!(
        c.of_bucket(DEFAULT_ACCOUNT, "cn-hangzhou", "ModifySecurityGroupPolicy"),
        2
    );
    assert_eq!(
        c.of_bucket(DEFAULT_ACCOUNT, "cn-shanghai", "DescribeSecurityGroups"),
        0
    );
    let (st, v) = send(
        &s,
        HttpRequest::get("/_sim/counts")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["total"], 6);
    assert_eq!(v["byAction"]["DescribeSecurityGroups"], 2);
    assert_eq!(v["byFault"]["throttle"], 1);
    assert_eq!(v["byBucket"][&bucket]["DescribeSecurityGroupAttribute"], 1);
    assert_eq!(v, serde_json::to_value(&c).expect("json"));
}
