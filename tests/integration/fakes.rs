//! Loopback fakes of STS (`AssumeRole`, `AssumeRoleWithOIDC`) and of the ECS instance metadata service,
//! recording every call. `AssumeRole` signatures are verified here with an encoder and HMAC written
//! independently of the agent's signer, so a shared bug cannot make both sides agree.

#![allow(dead_code)]

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, put};
use axum::{Json, Router};
use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use serde_json::json;
use sha1::Sha1;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// RFC 3986 unreserved characters stay; everything else is `%XY`.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

/// Reference implementation of RPC V1 for checking: sort, join, encode again, HMAC-SHA1.
pub fn expected_signature(method: &str, params: &BTreeMap<String, String>, secret: &str) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k.as_str() != "Signature")
        .map(|(k, v)| (enc(k), enc(v)))
        .collect();
    pairs.sort();
    let canonical = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let sts = format!("{method}&%2F&{}", enc(&canonical));
    let mut mac = Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes()).expect("hmac");
    mac.update(sts.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[derive(Clone, Debug)]
pub struct StsCall {
    pub method: String,
    pub action: String,
    pub params: BTreeMap<String, String>,
    /// For AssumeRole: whether the signature matched the caller's secret.
    pub signature_ok: Option<bool>,
    /// Everything the request carried in its URL (to prove nothing secret travels there).
    pub query: String,
}

#[derive(Clone, Debug)]
pub struct ImdsCall {
    pub method: String,
    pub path: String,
    pub token: Option<String>,
    pub ttl: Option<String>,
}

/// The fake's behaviour, adjustable while it runs.
pub struct FakeState {
    /// Access keys allowed to call AssumeRole: id → (secret, required security token).
    pub keys: BTreeMap<String, (String, Option<String>)>,
    /// When set, AssumeRoleWithOIDC accepts only this token.
    pub oidc_token: Option<String>,
    /// Issue these credentials every time; otherwise `STS.<n>`, `sts-secret-<n>`, `sts-token-<n>`.
    pub fixed: Option<(String, String, String)>,
    /// Lifetime of issued credentials, seconds.
    pub lifetime_secs: i64,
    /// Fail STS calls with 500 while set.
    pub sts_down: bool,
    /// The metadata service offers IMDSv2 tokens (and then insists on them).
    pub imds_v2: bool,
    pub role: String,
    pub issued: u64,
    pub sts_calls: Vec<StsCall>,
    pub imds_calls: Vec<ImdsCall>,
}

impl Default for FakeState {
    fn default() -> Self {
        FakeState {
            keys: BTreeMap::new(),
            oidc_token: None,
            fixed: None,
            lifetime_secs: 3600,
            sts_down: false,
            imds_v2: true,
            role: "SgpolicyEcsRole".into(),
            issued: 0,
            sts_calls: Vec::new(),
            imds_calls: Vec::new(),
        }
    }
}

impl FakeState {
    fn issue(&mut self) -> serde_json::Value {
        self.issued += 1;
        let n = self.issued;
        let (id, secret, token) = self.fixed.clone().unwrap_or_else(|| {
            (
                format!("STS.{n}"),
                format!("sts-secret-{n}"),
                format!("sts-token-{n}"),
            )
        });
        let exp = chrono::Utc::now() + chrono::Duration::seconds(self.lifetime_secs);
        json!({
            "AccessKeyId": id,
            "AccessKeySecret": secret,
            "SecurityToken": token,
            "Expiration": exp.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        })
    }
}

#[derive(Clone)]
pub struct Fake {
    pub state: Arc<Mutex<FakeState>>,
    pub url: String,
}

impl Fake {
    pub async fn start(state: FakeState) -> Fake {
        let state = Arc::new(Mutex::new(state));
        let app = Router::new()
            .route("/", any(sts))
            .route("/latest/api/token", put(imds_token))
            .route(
                "/latest/meta-data/ram/security-credentials/",
                get(imds_list),
            )
            .route(
                "/latest/meta-data/ram/security-credentials/{role}",
                get(imds_creds),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Fake { state, url }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().expect("fake state"))
    }

    pub fn sts_calls(&self) -> Vec<StsCall> {
        self.with(|s| s.sts_calls.clone())
    }

    pub fn imds_calls(&self) -> Vec<ImdsCall> {
        self.with(|s| s.imds_calls.clone())
    }
}

fn parse_form(text: &str, into: &mut BTreeMap<String, String>) {
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        into.insert(dec(k), dec(v));
    }
}

/// An STS error answer, rendered only at the end (a `Response` is too large to pass around in `Err`).
struct StsError(StatusCode, String, String);

fn sts_error(status: StatusCode, code: &str, message: &str) -> StsError {
    StsError(status, code.to_string(), message.to_string())
}

impl IntoResponse for StsError {
    fn into_response(self) -> Response {
        let StsError(status, code, message) = self;
        (
            status,
            Json(json!({"RequestId": "fake-req", "HostId": "sts.aliyuncs.com", "Code": code, "Message": message})),
        )
            .into_response()
    }
}

async fn sts(State(state): State<Arc<Mutex<FakeState>>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let mut params = BTreeMap::new();
    let query = parts.uri.query().unwrap_or("").to_string();
    parse_form(&query, &mut params);
    parse_form(&String::from_utf8_lossy(&bytes), &mut params);
    let method = parts.method.as_str().to_string();
    let action = params.get("Action").cloned().unwrap_or_default();
    let mut st = state.lock().expect("fake state");
    let mut call = StsCall {
        method: method.clone(),
        action: action.clone(),
        params: params.clone(),
        signature_ok: None,
        query,
    };
    let answer = (|| {
        if st.sts_down {
            return Err(sts_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "fake STS is down",
            ));
        }
        if params.get("Version").map(String::as_str) != Some("2015-04-01") {
            return Err(sts_error(
                StatusCode::BAD_REQUEST,
                "InvalidVersion",
                "bad Version",
            ));
        }
        match action.as_str() {
            "AssumeRoleWithOIDC" => {
                for p in ["RoleArn", "OIDCProviderArn", "OIDCToken", "RoleSessionName"] {
                    if !matches!(params.get(p), Some(v) if !v.is_empty()) {
                        return Err(sts_error(
                            StatusCode::BAD_REQUEST,
                            &format!("Missing{p}"),
                            p,
                        ));
                    }
                }
                if let Some(want) = &st.oidc_token {
                    if params.get("OIDCToken") != Some(want) {
                        return Err(sts_error(
                            StatusCode::BAD_REQUEST,
                            "InvalidParameter.OIDCToken",
                            "the OIDC token is invalid or expired",
                        ));
                    }
                }
                Ok(())
            }
            "AssumeRole" => {
                let id = params.get("AccessKeyId").cloned().unwrap_or_default();
                let Some((secret, token)) = st.keys.get(&id).cloned() else {
                    return Err(sts_error(
                        StatusCode::NOT_FOUND,
                        "InvalidAccessKeyId.NotFound",
                        "Specified access key is not found.",
                    ));
                };
                if token.is_some() && params.get("SecurityToken") != token.as_ref() {
                    return Err(sts_error(
                        StatusCode::BAD_REQUEST,
                        "InvalidSecurityToken.MismatchWithAccessKey",
                        "token mismatch",
                    ));
                }
                let want = expected_signature(&method, &params, &secret);
                let ok = params.get("Signature") == Some(&want);
                call.signature_ok = Some(ok);
                if !ok {
                    return Err(sts_error(
                        StatusCode::BAD_REQUEST,
                        "SignatureDoesNotMatch",
                        "Specified signature is not matched with our calculation.",
                    ));
                }
                Ok(())
            }
            _ => Err(sts_error(
                StatusCode::NOT_FOUND,
                "InvalidAction.NotFound",
                "no such action",
            )),
        }
    })();
    st.sts_calls.push(call);
    match answer {
        Err(e) => e.into_response(),
        Ok(()) => {
            let creds = st.issue();
            let arn = params.get("RoleArn").cloned().unwrap_or_default();
            Json(json!({
                "RequestId": "fake-req",
                "AssumedRoleUser": {"Arn": format!("{arn}/session"), "AssumedRoleId": "1:session"},
                "Credentials": creds,
            }))
            .into_response()
        }
    }
}

fn imds_record(st: &mut FakeState, method: &str, path: &str, headers: &HeaderMap) {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    st.imds_calls.push(ImdsCall {
        method: method.into(),
        path: path.into(),
        token: h("x-aliyun-ecs-metadata-token"),
        ttl: h("x-aliyun-ecs-metadata-token-ttl-seconds"),
    });
}

const IMDS_TOKEN: &str = "imds-session-token";

/// With v2 on, a GET without the session token is refused (hardened mode).
fn imds_check(st: &FakeState, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get("x-aliyun-ecs-metadata-token")
        .and_then(|v| v.to_str().ok());
    (st.imds_v2 && token != Some(IMDS_TOKEN))
        .then(|| (StatusCode::UNAUTHORIZED, "token required").into_response())
}

async fn imds_token(State(state): State<Arc<Mutex<FakeState>>>, headers: HeaderMap) -> Response {
    let mut st = state.lock().expect("fake state");
    imds_record(&mut st, "PUT", "/latest/api/token", &headers);
    if !st.imds_v2 {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    if headers
        .get("x-aliyun-ecs-metadata-token-ttl-seconds")
        .is_none()
    {
        return (StatusCode::BAD_REQUEST, "ttl required").into_response();
    }
    IMDS_TOKEN.into_response()
}

async fn imds_list(State(state): State<Arc<Mutex<FakeState>>>, headers: HeaderMap) -> Response {
    let mut st = state.lock().expect("fake state");
    imds_record(
        &mut st,
        "GET",
        "/latest/meta-data/ram/security-credentials/",
        &headers,
    );
    if let Some(refused) = imds_check(&st, &headers) {
        return refused;
    }
    st.role.clone().into_response()
}

async fn imds_creds(
    State(state): State<Arc<Mutex<FakeState>>>,
    Path(role): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut st = state.lock().expect("fake state");
    imds_record(
        &mut st,
        "GET",
        &format!("/latest/meta-data/ram/security-credentials/{role}"),
        &headers,
    );
    if let Some(refused) = imds_check(&st, &headers) {
        return refused;
    }
    if role != st.role {
        return (StatusCode::NOT_FOUND, "no such role").into_response();
    }
    if st.sts_down {
        return (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
    }
    let mut creds = st.issue();
    creds["Code"] = json!("Success");
    creds["LastUpdated"] = json!("2026-01-01T00:00:00Z");
    Json(creds).into_response()
}

/// A TCP relay that records every byte the client sends, to find the signatures it put on the wire.
pub async fn recording_proxy(target: &str) -> (String, Arc<Mutex<Vec<u8>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target = target.trim_start_matches("http://").to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                continue;
            };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            log.lock().expect("log").extend_from_slice(&buf[..n]);
                            if sw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = sw.shutdown().await;
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
                let _ = cw.shutdown().await;
            });
        }
    });
    (url, seen)
}
