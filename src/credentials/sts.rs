//! STS: `AssumeRole` (signed with the source credentials) and `AssumeRoleWithOIDC` (unsigned; the
//! OIDC token is the proof), API version 2015-04-01, as the official credential SDKs call them.
//!
//! Differences from the SDKs, both deliberate: parameters go in a POST form body rather than the
//! query string (so neither the signature, the source STS token nor the OIDC token ever sits in a URL
//! that a proxy or library could log), and error text is scrubbed of every secret involved.

use super::error::ErrorKind;
use super::refresh::Temporary;
use crate::ecs::client::{validate_endpoint, BadEndpoint};
use crate::ecs::credentials::{Credentials, Secret};
use crate::ecs::error::transport_cause;
use crate::ecs::redact::redact;
use crate::ecs::sign;
use chrono::{DateTime, NaiveDateTime, Utc};
use reqwest::Url;
use serde::Deserialize;
use std::time::Duration;

pub const VERSION: &str = "2015-04-01";
/// The SDKs' default session length, and STS's minimum.
pub const DEFAULT_DURATION_SECS: u64 = 3600;
pub const MIN_DURATION_SECS: u64 = 900;

/// A role request STS would refuse, caught before calling it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadRoleRequest {
    #[error("the role ARN is empty")]
    EmptyRoleArn,
    #[error("session duration {secs}s is below STS's minimum of {MIN_DURATION_SECS}s")]
    TooShort { secs: u64 },
}

/// An `Expiration` that is not `YYYY-MM-DDThh:mm:ssZ` (STS and the metadata service both use it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Expiration {value:?} is not YYYY-MM-DDThh:mm:ssZ")]
pub struct BadExpiration {
    pub value: String,
    #[source]
    pub source: chrono::ParseError,
}

/// What an STS answer says instead of credentials. The texts are the (redacted) server's.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// An error answer with a code: `{Code, Message, RequestId}` (or lower-case).
    #[error("HTTP {status} {code}: {message} (RequestId {})", .request_id.as_deref().unwrap_or("-"))]
    Refused {
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// An error status without a code (a proxy's page, say): the start of the body.
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the answer is not the expected JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("the {action} answer has no Credentials")]
    NoCredentials { action: String },
    #[error("Credentials lacks AccessKeyId, AccessKeySecret, SecurityToken or Expiration")]
    MissingFields,
    #[error(transparent)]
    Expiration(#[from] BadExpiration),
}

impl AnswerError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            AnswerError::Refused { .. } | AnswerError::Status { .. } => ErrorKind::Refused,
            AnswerError::NotJson(_)
            | AnswerError::NoCredentials { .. }
            | AnswerError::MissingFields
            | AnswerError::Expiration(_) => ErrorKind::Malformed,
        }
    }
}

/// Why STS gave no credentials.
#[derive(Debug, thiserror::Error)]
pub enum StsError {
    /// The role request is one STS would refuse.
    #[error(transparent)]
    Request(#[from] BadRoleRequest),
    /// The STS endpoint is not acceptable.
    #[error(transparent)]
    Endpoint(#[from] BadEndpoint),
    #[error("building the STS HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    #[error("the OIDC provider ARN is empty")]
    EmptyOidcProviderArn,
    /// The OIDC token file holds nothing but whitespace.
    #[error("the OIDC token file is empty")]
    EmptyOidcToken,
    /// The request did not get through (connection, timeout).
    #[error("{action} at {host}: {}", transport_cause(.source))]
    Transport {
        action: &'static str,
        host: String,
        #[source]
        source: reqwest::Error,
    },
    /// The answer was cut short.
    #[error("{action} at {host}: reading the answer: {}", transport_cause(.source))]
    ReadingAnswer {
        action: &'static str,
        host: String,
        #[source]
        source: reqwest::Error,
    },
    /// STS answered, with an error or without usable credentials.
    #[error("{action} at {host}: {source}")]
    Answer {
        action: &'static str,
        host: String,
        #[source]
        source: AnswerError,
    },
}

impl StsError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StsError::Request(_)
            | StsError::Endpoint(_)
            | StsError::EmptyOidcProviderArn
            | StsError::EmptyOidcToken => ErrorKind::Config,
            StsError::HttpClient(_) => ErrorKind::Local,
            StsError::Transport { .. } | StsError::ReadingAnswer { .. } => ErrorKind::Unreachable,
            StsError::Answer { source, .. } => source.kind(),
        }
    }
}

/// What to ask STS for. `session_name` shows up in ActionTrail as the assumed-role session.
#[derive(Clone, PartialEq, Eq)]
pub struct RoleRequest {
    pub role_arn: String,
    pub session_name: String,
    pub duration_secs: u64,
    pub policy: Option<String>,
    /// What the role's trust policy requires; confidential, like a secret (never printed).
    pub external_id: Option<String>,
}

/// Everything but the external id, which shows as `***`.
impl std::fmt::Debug for RoleRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleRequest")
            .field("role_arn", &self.role_arn)
            .field("session_name", &self.session_name)
            .field("duration_secs", &self.duration_secs)
            .field("policy", &self.policy)
            .field("external_id", &self.external_id.as_ref().map(|_| "***"))
            .finish()
    }
}

impl RoleRequest {
    /// A request with the SDK defaults; the session name is `sgpolicy-<unix seconds>` (the Python
    /// SDK uses `credentials-python-<unix seconds>`).
    pub fn new(role_arn: impl Into<String>) -> RoleRequest {
        RoleRequest {
            role_arn: role_arn.into(),
            session_name: format!("sgpolicy-{}", Utc::now().timestamp()),
            duration_secs: DEFAULT_DURATION_SECS,
            policy: None,
            external_id: None,
        }
    }

    /// The SDKs refuse sessions shorter than STS's 900-second minimum before calling.
    pub fn validate(&self) -> Result<(), BadRoleRequest> {
        if self.role_arn.is_empty() {
            return Err(BadRoleRequest::EmptyRoleArn);
        }
        if self.duration_secs < MIN_DURATION_SECS {
            return Err(BadRoleRequest::TooShort {
                secs: self.duration_secs,
            });
        }
        Ok(())
    }
}

/// An STS endpoint and the HTTP client to reach it (SDK timeouts: 5 s connect, 10 s read).
#[derive(Clone)]
pub struct Sts {
    http: reqwest::Client,
    url: Url,
}

impl Sts {
    pub fn new(endpoint: &str, allow_insecure_http: bool) -> Result<Sts, StsError> {
        let url = validate_endpoint(endpoint, allow_insecure_http)?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("sgpolicy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(StsError::HttpClient)?;
        Ok(Sts { http, url })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// `AssumeRole`, signed (RPC V1) with `source`.
    pub async fn assume_role(
        &self,
        source: &Credentials,
        req: &RoleRequest,
    ) -> Result<Temporary, StsError> {
        req.validate()?;
        let mut params = self.role_params("AssumeRole", req);
        params.extend([
            ("AccessKeyId", source.access_key_id.clone()),
            ("SignatureMethod", "HMAC-SHA1".into()),
            ("SignatureVersion", "1.0".into()),
            ("SignatureNonce", uuid::Uuid::new_v4().to_string()),
        ]);
        if let Some(id) = req.external_id.as_deref().filter(|s| !s.is_empty()) {
            params.push(("ExternalId", id.to_string()));
        }
        if let Some(t) = &source.security_token {
            params.push(("SecurityToken", t.expose().to_string()));
        }
        let signature = sign::sign(
            "POST",
            params.iter().map(|(k, v)| (*k, v.as_str())),
            source.access_key_secret.expose(),
        );
        params.push(("Signature", signature.clone()));
        let token = source
            .security_token
            .as_ref()
            .map(Secret::expose)
            .unwrap_or("");
        // STS may echo what it received (SignatureDoesNotMatch quotes its string to sign).
        let external_id = req.external_id.as_deref().unwrap_or("");
        let secrets = [
            source.access_key_secret.expose(),
            token,
            signature.as_str(),
            external_id,
        ];
        self.post("AssumeRole", &params, &secrets).await
    }

    /// `AssumeRoleWithOIDC`: unsigned, authenticated by the OIDC token itself.
    pub async fn assume_role_with_oidc(
        &self,
        req: &RoleRequest,
        oidc_provider_arn: &str,
        oidc_token: &Secret,
    ) -> Result<Temporary, StsError> {
        req.validate()?;
        if oidc_provider_arn.is_empty() {
            return Err(StsError::EmptyOidcProviderArn);
        }
        let token = oidc_token.expose().trim();
        if token.is_empty() {
            return Err(StsError::EmptyOidcToken);
        }
        let mut params = self.role_params("AssumeRoleWithOIDC", req);
        params.push(("OIDCProviderArn", oidc_provider_arn.to_string()));
        params.push(("OIDCToken", token.to_string()));
        self.post("AssumeRoleWithOIDC", &params, &[token, oidc_token.expose()])
            .await
    }

    fn role_params(&self, action: &str, req: &RoleRequest) -> Vec<(&'static str, String)> {
        let mut params = vec![
            ("Action", action.to_string()),
            ("Format", "JSON".to_string()),
            ("Version", VERSION.to_string()),
            ("DurationSeconds", req.duration_secs.to_string()),
            ("RoleArn", req.role_arn.clone()),
            ("RoleSessionName", req.session_name.clone()),
            (
                "Timestamp",
                Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ),
        ];
        if let Some(p) = req.policy.as_deref().filter(|s| !s.is_empty()) {
            params.push(("Policy", p.to_string()));
        }
        params
    }

    async fn post(
        &self,
        action: &'static str,
        params: &[(&str, String)],
        secrets: &[&str],
    ) -> Result<Temporary, StsError> {
        let body = params
            .iter()
            .map(|(k, v)| format!("{}={}", sign::encode(k), sign::encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let host = self.url.host_str().unwrap_or("?").to_string();
        let response = self
            .http
            .post(self.url.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-acs-action", action)
            .header("x-acs-version", VERSION)
            .body(body)
            .send()
            .await
            .map_err(|source| StsError::Transport {
                action,
                host: host.clone(),
                source,
            })?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|source| StsError::ReadingAnswer {
                action,
                host: host.clone(),
                source,
            })?;
        let text = redact(&text, secrets);
        parse_answer(action, status, &text).map_err(|source| StsError::Answer {
            action,
            host,
            source,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    credentials: Option<StsCredentials>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsCredentials {
    access_key_id: Option<String>,
    access_key_secret: Option<String>,
    security_token: Option<String>,
    expiration: Option<String>,
}

/// `{Code, Message, RequestId}` (or lower-case) from an error body, for a readable message.
fn error_summary(status: u16, text: &str) -> AnswerError {
    let v: Option<serde_json::Value> = serde_json::from_str(text).ok();
    let field = |names: &[&str]| {
        v.as_ref().and_then(|v| {
            names
                .iter()
                .find_map(|n| v.get(*n).and_then(|x| x.as_str()).map(str::to_string))
        })
    };
    match field(&["Code", "code"]) {
        Some(code) => AnswerError::Refused {
            status,
            code,
            message: field(&["Message", "message"]).unwrap_or_default(),
            request_id: field(&["RequestId", "requestId"]),
        },
        None => AnswerError::Status {
            status,
            body: text.chars().take(200).collect(),
        },
    }
}

/// Parses an STS answer (already redacted text) into temporary credentials.
pub fn parse_answer(action: &str, status: u16, text: &str) -> Result<Temporary, AnswerError> {
    if !(200..300).contains(&status) {
        return Err(error_summary(status, text));
    }
    let answer: Answer = serde_json::from_str(text).map_err(AnswerError::NotJson)?;
    let c = answer
        .credentials
        .ok_or_else(|| AnswerError::NoCredentials {
            action: action.to_string(),
        })?;
    match Temporary::from_fields(
        c.access_key_id,
        c.access_key_secret,
        c.security_token,
        c.expiration,
    ) {
        Some(t) => Ok(t?),
        None => Err(AnswerError::MissingFields),
    }
}

/// `2015-04-09T11:52:19Z`, the format STS and the metadata service use.
pub fn parse_expiration(s: &str) -> Result<DateTime<Utc>, BadExpiration> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%SZ")
        .map(|t| t.and_utc())
        .map_err(|source| BadExpiration {
            value: s.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::testing::{closed_port, message, serve};

    #[test]
    fn parses_the_documented_answer() {
        let text = r#"{"RequestId":"r","AssumedRoleUser":{"Arn":"acs:ram::1:role/x/s","AssumedRoleId":"1:s"},
            "Credentials":{"AccessKeyId":"STS.id","AccessKeySecret":"sec","SecurityToken":"tok","Expiration":"2015-04-09T11:52:19Z"}}"#;
        let t = parse_answer("AssumeRole", 200, text).unwrap();
        assert_eq!(t.credentials.access_key_id, "STS.id");
        assert_eq!(t.expiration.timestamp(), 1428580339);
    }

    #[test]
    fn errors_are_summarised() {
        let e = parse_answer(
            "AssumeRole",
            403,
            r#"{"RequestId":"R1","Code":"NoPermission","Message":"You are not authorized"}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "HTTP 403 NoPermission: You are not authorized (RequestId R1)"
        );
        assert!(parse_answer("AssumeRole", 200, "{}")
            .unwrap_err()
            .to_string()
            .contains("no Credentials"));
        assert!(parse_answer("AssumeRole", 200, r#"{"Credentials":{"AccessKeyId":"a"}}"#).is_err());
        assert!(parse_expiration("2015-04-09 11:52:19").is_err());
    }

    /// The messages, word for word: the chain's report and the accounts' errors quote them.
    #[test]
    fn answer_messages_word_for_word() {
        let e = |status: u16, text: &str| message(parse_answer("AssumeRole", status, text));
        assert_eq!(
            e(
                403,
                r#"{"RequestId":"R1","Code":"NoPermission","Message":"You are not authorized"}"#
            ),
            "HTTP 403 NoPermission: You are not authorized (RequestId R1)"
        );
        assert_eq!(
            e(400, r#"{"code":"Bad","message":"m","requestId":"r"}"#),
            "HTTP 400 Bad: m (RequestId r)"
        );
        assert_eq!(e(400, r#"{"Code":"Bad"}"#), "HTTP 400 Bad:  (RequestId -)");
        let long = "x".repeat(300);
        assert_eq!(e(502, &long), format!("HTTP 502: {}", "x".repeat(200)));
        assert_eq!(
            e(500, r#"{"Message":"m"}"#),
            "HTTP 500: {\"Message\":\"m\"}"
        );
        assert_eq!(
            e(200, "<html>"),
            "the answer is not the expected JSON: expected value at line 1 column 1"
        );
        assert_eq!(e(200, "{}"), "the AssumeRole answer has no Credentials");
        assert_eq!(
            message(parse_answer("AssumeRoleWithOIDC", 200, "{}")),
            "the AssumeRoleWithOIDC answer has no Credentials"
        );
        assert_eq!(
            e(200, r#"{"Credentials":{"AccessKeyId":"a"}}"#),
            "Credentials lacks AccessKeyId, AccessKeySecret, SecurityToken or Expiration"
        );
        assert_eq!(
            e(
                200,
                r#"{"Credentials":{"AccessKeyId":"a","AccessKeySecret":"b","SecurityToken":"c","Expiration":"2015-04-09 11:52:19"}}"#
            ),
            "Expiration \"2015-04-09 11:52:19\" is not YYYY-MM-DDThh:mm:ssZ"
        );
    }

    #[test]
    fn request_messages_word_for_word() {
        let mut r = RoleRequest::new("");
        assert_eq!(message(r.validate()), "the role ARN is empty");
        r.role_arn = "acs:ram::1:role/r".into();
        r.duration_secs = 899;
        assert_eq!(
            message(r.validate()),
            "session duration 899s is below STS's minimum of 900s"
        );
        assert_eq!(
            message(Sts::new("http://192.0.2.1/", false)),
            "refusing plain http endpoint http://192.0.2.1/: signed requests would cross the network unencrypted; use https, a loopback address, or pass --insecure-http"
        );
        assert_eq!(
            message(Sts::new("nope", false)),
            "invalid endpoint \"nope\": relative URL without a base (expected e.g. https://ecs.cn-hangzhou.aliyuncs.com)"
        );
    }

    #[tokio::test]
    async fn exchange_messages_word_for_word() {
        let req = RoleRequest::new("acs:ram::1:role/r");
        let source = Credentials {
            access_key_id: "LTAIid".into(),
            access_key_secret: Secret::new("source-secret"),
            security_token: Some(Secret::new("source-token")),
        };
        // Refused before any request.
        let sts = Sts::new(&closed_port(), false).unwrap();
        let token = Secret::new("jwt");
        assert_eq!(
            message(sts.assume_role_with_oidc(&req, "", &token).await),
            "the OIDC provider ARN is empty"
        );
        assert_eq!(
            message(
                sts.assume_role_with_oidc(&req, "p", &Secret::new(" \n"))
                    .await
            ),
            "the OIDC token file is empty"
        );
        let mut short = req.clone();
        short.duration_secs = 0;
        assert_eq!(
            message(sts.assume_role(&source, &short).await),
            "session duration 0s is below STS's minimum of 900s"
        );
        // Nobody listening.
        let e = message(sts.assume_role(&source, &req).await);
        assert!(
            e.starts_with("AssumeRole at 127.0.0.1: connection failed: "),
            "{e}"
        );
        // STS refuses, answers nonsense, or answers without credentials.
        let refusing = serve(&[(
            "POST",
            "/",
            403,
            r#"{"RequestId":"R1","Code":"NoPermission","Message":"You are not authorized"}"#,
        )])
        .await;
        let sts = Sts::new(&refusing, false).unwrap();
        assert_eq!(
            message(sts.assume_role(&source, &req).await),
            "AssumeRole at 127.0.0.1: HTTP 403 NoPermission: You are not authorized (RequestId R1)"
        );
        let empty = serve(&[("POST", "/", 200, "{}")]).await;
        let sts = Sts::new(&empty, false).unwrap();
        assert_eq!(
            message(sts.assume_role_with_oidc(&req, "p", &token).await),
            "AssumeRoleWithOIDC at 127.0.0.1: the AssumeRoleWithOIDC answer has no Credentials"
        );
    }

    #[test]
    fn debug_never_shows_the_external_id() {
        let mut r = RoleRequest::new("acs:ram::1:role/x");
        r.external_id = Some("ext-Confidential-7".into());
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("Confidential") && shown.contains("acs:ram::1:role/x"),
            "{shown}"
        );
        r.external_id = None;
        assert!(format!("{r:?}").contains("external_id: None"));
    }

    #[test]
    fn short_sessions_are_refused_like_the_sdk() {
        let mut r = RoleRequest::new("acs:ram::1:role/x");
        assert!(r.validate().is_ok());
        r.duration_secs = 899;
        assert!(r.validate().unwrap_err().to_string().contains("900"));
    }
}
