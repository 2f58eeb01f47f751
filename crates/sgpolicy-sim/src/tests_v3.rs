//! V3-signed (`ACS3-HMAC-SHA256`) requests through the whole pipeline, signed by a test-only signer.
//!
//! Like `tests`, the signer encodes with the `percent-encoding` crate and formats hex with `{:02x}`,
//! not `auth_v3`'s helpers, so a canonicalisation bug in `auth_v3` cannot make both sides agree.

use super::tests::{call, code, enc, send, sim};
use super::*;
use axum::body::Body;
use axum::http::Request as HttpRequest;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const HOST: &str = "127.0.0.1:9";

fn hexstr(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What to send; `Default` is a fresh DescribeSecurityGroups by `testid` with no parameters.
struct V3 {
    action: &'static str,
    query: Vec<(&'static str, &'static str)>,
    form: Option<&'static str>,
    ak: &'static str,
    secret: &'static str,
    token: Option<&'static str>,
    nonce: String,
}

impl Default for V3 {
    fn default() -> V3 {
        V3 {
            action: "DescribeSecurityGroups",
            query: vec![("RegionId", "cn-hangzhou")],
            form: None,
            ak: "testid",
            secret: "testsecret",
            token: None,
            nonce: uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

impl V3 {
    /// The request the Tea SDK would send: every header signed, Authorization last.
    fn request(&self) -> HttpRequest<Body> {
        let body = self.form.unwrap_or("");
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), HOST.into()),
            ("x-acs-action".into(), self.action.into()),
            ("x-acs-version".into(), "2014-05-26".into()),
            (
                "x-acs-date".into(),
                chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ),
            ("x-acs-signature-nonce".into(), self.nonce.clone()),
            (
                "x-acs-content-sha256".into(),
                hexstr(&Sha256::digest(body.as_bytes())),
            ),
        ];
        if self.form.is_some() {
            headers.push((
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
        if let Some(t) = self.token {
            headers.push(("x-acs-security-token".into(), t.into()));
        }
        headers.sort();
        let mut pairs: Vec<String> = self
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect();
        pairs.sort();
        let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        let canonical = format!(
            "POST\n/\n{}\n{}\n{}\n{}",
            pairs.join("&"),
            headers
                .iter()
                .map(|(k, v)| format!("{k}:{v}\n"))
                .collect::<String>(),
            names.join(";"),
            hexstr(&Sha256::digest(body.as_bytes()))
        );
        let sts = format!(
            "ACS3-HMAC-SHA256\n{}",
            hexstr(&Sha256::digest(canonical.as_bytes()))
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.as_bytes()).expect("hmac key");
        mac.update(sts.as_bytes());
        let sig = hexstr(&mac.finalize().into_bytes());
        let mut b = HttpRequest::post(format!("/?{}", pairs.join("&")));
        for (k, v) in &headers {
            b = b.header(k, v);
        }
        b.header(
            "authorization",
            format!(
                "ACS3-HMAC-SHA256 Credential={},SignedHeaders={},Signature={sig}",
                self.ak,
                names.join(";")
            ),
        )
        .body(Body::from(body))
        .expect("request")
    }
}

#[tokio::test]
async fn v3_requests_run_all_three_actions_with_action_and_version_from_headers() {
    let s = sim();
    let (st, v) = send(&s, V3::default().request()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["TotalCount"], 5, "{v}");
    let attr = V3 {
        action: "DescribeSecurityGroupAttribute",
        query: vec![("RegionId", "cn-hangzhou"), ("SecurityGroupId", "sg-web")],
        ..V3::default()
    };
    let (st, v) = send(&s, attr.request()).await;
    assert_eq!(
        (st, v["InnerAccessPolicy"].as_str()),
        (200, Some("Accept")),
        "{v}"
    );
    let modify = V3 {
        action: "ModifySecurityGroupPolicy",
        query: vec![
            ("RegionId", "cn-hangzhou"),
            ("SecurityGroupId", "sg-web"),
            ("InnerAccessPolicy", "Drop"),
            ("ClientToken", "v3-token a+b"),
        ],
        ..V3::default()
    };
    let (st, v) = send(&s, modify.request()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(s.policy_of("cn-hangzhou", "sg-web"), Some(Policy::Drop));
    let calls = s.calls();
    assert!(calls.iter().all(|c| c.signature == "V3"), "{calls:?}");
    let last = calls.last().expect("logged");
    assert_eq!(
        (
            last.action.as_str(),
            last.access_key_id.as_str(),
            last.client_token.as_deref(),
            last.effective
        ),
        (
            "ModifySecurityGroupPolicy",
            "testid",
            Some("v3-token a+b"),
            true
        )
    );
}

#[tokio::test]
async fn v3_parameters_may_travel_in_a_form_body() {
    let s = sim();
    let req = V3 {
        action: "ModifySecurityGroupPolicy",
        form: Some("SecurityGroupId=sg-web&InnerAccessPolicy=Drop"),
        ..V3::default()
    };
    let (st, v) = send(&s, req.request()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(s.policy_of("cn-hangzhou", "sg-web"), Some(Policy::Drop));
}

#[tokio::test]
async fn v3_gateway_errors_reach_the_client_and_the_log() {
    let s = sim();
    let once = V3::default();
    assert_eq!(send(&s, once.request()).await.0, 200);
    let (st, v) = send(&s, once.request()).await;
    assert_eq!((st, code(&v)), (400, "SignatureNonceUsed"));
    let wrong = V3 {
        secret: "nottherightone",
        ..V3::default()
    };
    let (st, v) = send(&s, wrong.request()).await;
    assert_eq!((st, code(&v)), (400, "SignatureDoesNotMatch"));
    let msg = v["Message"].as_str().unwrap_or("");
    assert!(
        msg.contains("server string to sign is:ACS3-HMAC-SHA256\n"),
        "{msg}"
    );
    // A failed signature must not burn the nonce: the genuine request with it still passes.
    let genuine = V3 {
        nonce: wrong.nonce.clone(),
        ..V3::default()
    };
    assert_eq!(send(&s, genuine.request()).await.0, 200);
    let sts = |token| V3 {
        ak: "stsid",
        secret: "stssecret",
        token,
        ..V3::default()
    };
    assert_eq!(send(&s, sts(Some("the-token")).request()).await.0, 200);
    let (st, v) = send(&s, sts(Some("stale")).request()).await;
    assert_eq!(
        (st, code(&v)),
        (400, "InvalidSecurityToken.MismatchWithAccessKey")
    );
    let (st, v) = send(&s, sts(None).request()).await;
    assert_eq!((st, code(&v)), (400, "MissingSecurityToken"));
    let unknown = V3 {
        action: "DeleteSecurityGroup",
        ..V3::default()
    };
    let (st, v) = send(&s, unknown.request()).await;
    assert_eq!((st, code(&v)), (404, "InvalidAction.NotFound"));
    let log: Vec<(String, String, u16)> = s
        .calls()
        .into_iter()
        .map(|c| (c.access_key_id, c.action, c.status))
        .collect();
    assert_eq!(log.len(), 8);
    assert_eq!(
        log[1],
        ("testid".into(), "DescribeSecurityGroups".into(), 400)
    );
    assert_eq!(
        log[5],
        ("stsid".into(), "DescribeSecurityGroups".into(), 400)
    );
}

#[tokio::test]
async fn a_v1_signature_wins_over_a_stray_acs3_header() {
    let s = sim();
    // V1 callers are unaffected by V3 support; a request with a Signature parameter is V1 whatever
    // its headers say.
    let (st, _) = call(
        &s,
        &[
            ("Action", "DescribeSecurityGroups"),
            ("RegionId", "cn-hangzhou"),
        ],
    )
    .await;
    assert_eq!(st, 200);
    let p = super::tests::signed(
        "POST",
        "testsecret",
        &[
            ("Action", "DescribeSecurityGroups"),
            ("RegionId", "cn-hangzhou"),
        ],
    );
    let req = HttpRequest::post(format!("/?{}", super::tests::query(&p)))
        .header(
            "authorization",
            "ACS3-HMAC-SHA256 Credential=x,SignedHeaders=host,Signature=00",
        )
        .body(Body::empty())
        .expect("req");
    let (st, v) = send(&s, req).await;
    assert_eq!(st, 200, "{v}");
    assert!(s.calls().iter().all(|c| c.signature == "V1"));
}
