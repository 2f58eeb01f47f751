//! The ECS instance RAM role through the instance metadata service, as the official SDKs read it.
//!
//! IMDSv2 first: `PUT /latest/api/token` with `X-aliyun-ecs-metadata-token-ttl-seconds: 21600`, then
//! GETs carrying `X-aliyun-ecs-metadata-token`. If the token cannot be had, or a GET with it fails,
//! the SDK falls back to plain (v1) GETs unless `ALIBABA_CLOUD_IMDSV1_DISABLED=true`. The role name
//! comes from `ALIBABA_CLOUD_ECS_METADATA` (or a profile), else from the listing
//! `GET /latest/meta-data/ram/security-credentials/`. Timeouts are one second, as in the SDK.

use super::error::ErrorKind;
use super::refresh::Temporary;
use super::sts::BadExpiration;
use crate::ecs::credentials::Secret;
use crate::ecs::error::transport_cause;
use reqwest::Url;
use serde::Deserialize;
use std::time::Duration;

pub const DEFAULT_ENDPOINT: &str = "http://100.100.100.200";
const TOKEN_PATH: &str = "/latest/api/token";
const CREDENTIALS_PATH: &str = "/latest/meta-data/ram/security-credentials/";
const TOKEN_TTL_SECS: &str = "21600";

/// A metadata endpoint (an override, for tests) that is not the service's address or a loopback one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadMetadataEndpoint {
    #[error("invalid metadata endpoint {endpoint:?}: {source}")]
    Unparsable {
        endpoint: String,
        #[source]
        source: url::ParseError,
    },
    #[error("metadata endpoint {endpoint} must be http://100.100.100.200 or a loopback address")]
    NotMetadataAddress { endpoint: String },
}

/// A metadata path that cannot be joined to the endpoint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("metadata path {path}: {source}")]
pub struct BadPath {
    pub path: String,
    #[source]
    pub source: url::ParseError,
}

/// Why no IMDSv2 session token was had.
#[derive(Debug, thiserror::Error)]
pub enum TokenFailure {
    #[error(transparent)]
    Path(#[from] BadPath),
    #[error("{}", transport_cause(.0))]
    Transport(#[source] reqwest::Error),
    #[error("HTTP {0}")]
    Status(u16),
}

/// Why the metadata service gave no credentials.
#[derive(Debug, thiserror::Error)]
pub enum ImdsError {
    #[error(transparent)]
    Endpoint(#[from] BadMetadataEndpoint),
    #[error("building the metadata HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    #[error(transparent)]
    Path(#[from] BadPath),
    /// No IMDSv2 token, and IMDSv1 is disabled: nothing to fall back to.
    #[error("getting the IMDSv2 token from {base}: {source} (IMDSv1 is disabled by ALIBABA_CLOUD_IMDSV1_DISABLED)")]
    Token {
        base: Url,
        #[source]
        source: TokenFailure,
    },
    /// The GET did not get through, or its answer was cut short.
    #[error("GET {path}: {}", transport_cause(.source))]
    Get {
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {path}: HTTP {status} (is a RAM role attached to this instance?)")]
    Status { path: String, status: u16 },
    #[error("the metadata service lists no RAM role for this instance")]
    NoRole,
    /// A role name with a `/` or `..`; `listed` when it came from the service's listing rather than
    /// the configuration.
    #[error("RAM role name {role:?} is not a plain name")]
    BadRoleName { role: String, listed: bool },
    #[error("GET {path}: the answer is not the expected JSON: {source}")]
    NotJson {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// The credentials document's `Code` (kept) is not `Success`.
    #[error("GET {path}: Code is {code:?}, not \"Success\"")]
    NotSuccess { path: String, code: String },
    #[error("GET {path}: AccessKeyId, AccessKeySecret, SecurityToken or Expiration is missing")]
    MissingFields { path: String },
    #[error(transparent)]
    Expiration(#[from] BadExpiration),
}

impl ImdsError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ImdsError::Endpoint(_) | ImdsError::Path(_) => ErrorKind::Config,
            ImdsError::HttpClient(_) => ErrorKind::Local,
            ImdsError::Token { source, .. } => match source {
                TokenFailure::Path(_) => ErrorKind::Config,
                TokenFailure::Transport(_) => ErrorKind::Unreachable,
                TokenFailure::Status(_) => ErrorKind::Refused,
            },
            ImdsError::Get { .. } => ErrorKind::Unreachable,
            ImdsError::Status { .. } | ImdsError::NoRole | ImdsError::NotSuccess { .. } => {
                ErrorKind::Refused
            }
            ImdsError::BadRoleName { listed: false, .. } => ErrorKind::Config,
            ImdsError::BadRoleName { listed: true, .. }
            | ImdsError::NotJson { .. }
            | ImdsError::MissingFields { .. }
            | ImdsError::Expiration(_) => ErrorKind::Malformed,
        }
    }
}

/// The metadata service is plain HTTP on a link-local address; an override (for tests) must be the
/// real address or a loopback one, never a host across the network.
pub fn validate_endpoint(endpoint: &str) -> Result<Url, BadMetadataEndpoint> {
    let url = Url::parse(endpoint).map_err(|source| BadMetadataEndpoint::Unparsable {
        endpoint: endpoint.to_string(),
        source,
    })?;
    let host_ok = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.octets() == [100, 100, 100, 200],
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    if url.scheme() != "http" || !host_ok {
        return Err(BadMetadataEndpoint::NotMetadataAddress {
            endpoint: endpoint.to_string(),
        });
    }
    Ok(url)
}

#[derive(Clone)]
pub struct Imds {
    http: reqwest::Client,
    base: Url,
    imdsv1_disabled: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleCredentials {
    code: Option<String>,
    access_key_id: Option<String>,
    access_key_secret: Option<String>,
    security_token: Option<String>,
    expiration: Option<String>,
}

impl Imds {
    pub fn new(endpoint: &str, imdsv1_disabled: bool) -> Result<Imds, ImdsError> {
        let base = validate_endpoint(endpoint)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .map_err(ImdsError::HttpClient)?;
        Ok(Imds {
            http,
            base,
            imdsv1_disabled,
        })
    }

    fn url(&self, path: &str) -> Result<Url, BadPath> {
        self.base.join(path).map_err(|source| BadPath {
            path: path.to_string(),
            source,
        })
    }

    /// The IMDSv2 session token; `None` means "use v1" (only when v1 is allowed).
    async fn token(&self) -> Result<Option<Secret>, ImdsError> {
        let result = async {
            let r = self
                .http
                .put(self.url(TOKEN_PATH)?)
                .header("X-aliyun-ecs-metadata-token-ttl-seconds", TOKEN_TTL_SECS)
                .send()
                .await
                .map_err(TokenFailure::Transport)?;
            let status = r.status().as_u16();
            if status != 200 {
                return Err(TokenFailure::Status(status));
            }
            r.text()
                .await
                .map(Secret::new)
                .map_err(TokenFailure::Transport)
        }
        .await;
        match result {
            Ok(t) => Ok(Some(t)),
            Err(source) if self.imdsv1_disabled => Err(ImdsError::Token {
                base: self.base.clone(),
                source,
            }),
            Err(e) => {
                tracing::debug!("no IMDSv2 token ({e}); falling back to IMDSv1");
                Ok(None)
            }
        }
    }

    async fn get(&self, path: &str, token: Option<&Secret>) -> Result<String, ImdsError> {
        let mut req = self.http.get(self.url(path)?);
        if let Some(t) = token {
            req = req.header("X-aliyun-ecs-metadata-token", t.expose());
        }
        let failed = |source| ImdsError::Get {
            path: path.to_string(),
            source,
        };
        let r = req.send().await.map_err(failed)?;
        let status = r.status().as_u16();
        if status != 200 {
            return Err(ImdsError::Status {
                path: path.to_string(),
                status,
            });
        }
        r.text().await.map_err(failed)
    }

    /// A GET with the v2 token, retried without it when the SDK would (token obtained, v1 allowed).
    async fn get_with_fallback(
        &self,
        path: &str,
        token: Option<&Secret>,
    ) -> Result<String, ImdsError> {
        match self.get(path, token).await {
            Ok(t) => Ok(t),
            Err(e) if token.is_some() && !self.imdsv1_disabled => {
                tracing::debug!("metadata GET with token failed ({e}); retrying with IMDSv1");
                self.get(path, None).await
            }
            Err(e) => Err(e),
        }
    }

    /// The role attached to the instance (first line of the listing).
    pub async fn role_name(&self) -> Result<String, ImdsError> {
        let token = self.token().await?;
        let text = self
            .get_with_fallback(CREDENTIALS_PATH, token.as_ref())
            .await?;
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_string)
            .ok_or(ImdsError::NoRole)
    }

    /// Fresh credentials for `role` (looked up first when `None`), with a fresh v2 token each time.
    pub async fn credentials(&self, role: Option<&str>) -> Result<Temporary, ImdsError> {
        let (role, listed) = match role.filter(|r| !r.is_empty()) {
            Some(r) => (r.to_string(), false),
            None => (self.role_name().await?, true),
        };
        if role.contains('/') || role.contains("..") {
            return Err(ImdsError::BadRoleName { role, listed });
        }
        let token = self.token().await?;
        let path = format!("{CREDENTIALS_PATH}{role}");
        let text = self.get_with_fallback(&path, token.as_ref()).await?;
        let c: RoleCredentials = match serde_json::from_str(&text) {
            Ok(c) => c,
            Err(source) => return Err(ImdsError::NotJson { path, source }),
        };
        if c.code.as_deref() != Some("Success") {
            return Err(ImdsError::NotSuccess {
                path,
                code: c.code.unwrap_or_default(),
            });
        }
        match Temporary::from_fields(
            c.access_key_id,
            c.access_key_secret,
            c.security_token,
            c.expiration,
        ) {
            Some(t) => Ok(t?),
            None => Err(ImdsError::MissingFields { path }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::testing::{closed_port, message, serve};

    #[test]
    fn only_the_real_address_or_loopback() {
        assert!(validate_endpoint(DEFAULT_ENDPOINT).is_ok());
        assert!(validate_endpoint("http://127.0.0.1:9999").is_ok());
        assert!(validate_endpoint("http://10.0.0.1").is_err());
        assert!(validate_endpoint("https://100.100.100.200").is_err());
        assert!(validate_endpoint("nope").is_err());
    }

    /// The messages, word for word: the chain's report quotes them.
    #[tokio::test]
    async fn messages_word_for_word() {
        assert_eq!(
            message(validate_endpoint("nope")),
            "invalid metadata endpoint \"nope\": relative URL without a base"
        );
        assert_eq!(
            message(validate_endpoint("http://10.0.0.1")),
            "metadata endpoint http://10.0.0.1 must be http://100.100.100.200 or a loopback address"
        );
        assert_eq!(
            message(Imds::new("https://100.100.100.200", false)),
            "metadata endpoint https://100.100.100.200 must be http://100.100.100.200 or a loopback address"
        );
        let imds = Imds::new(&closed_port(), false).unwrap();
        assert_eq!(
            message(imds.credentials(Some("a/b")).await),
            "RAM role name \"a/b\" is not a plain name"
        );
        // No token (v1 allowed), then the listing cannot be had either.
        let e = message(imds.credentials(None).await);
        assert!(
            e.starts_with("GET /latest/meta-data/ram/security-credentials/: connection failed: "),
            "{e}"
        );
        let base = closed_port();
        let imds = Imds::new(&base, true).unwrap();
        let e = message(imds.credentials(Some("R")).await);
        assert!(
            e.starts_with(&format!(
                "getting the IMDSv2 token from {base}: connection failed: "
            )) && e.ends_with(" (IMDSv1 is disabled by ALIBABA_CLOUD_IMDSV1_DISABLED)"),
            "{e}"
        );

        let p = "/latest/meta-data/ram/security-credentials/";
        let refusing = serve(&[("PUT", TOKEN_PATH, 403, "")]).await;
        let imds = Imds::new(&refusing, true).unwrap();
        assert_eq!(
            message(imds.credentials(Some("R")).await),
            format!("getting the IMDSv2 token from {refusing}: HTTP 403 (IMDSv1 is disabled by ALIBABA_CLOUD_IMDSV1_DISABLED)")
        );
        let full = r#""AccessKeyId":"a","AccessKeySecret":"b","SecurityToken":"c""#;
        let failed = r#"{"Code":"Failed"}"#.to_string();
        let partial = r#"{"Code":"Success","AccessKeyId":"a"}"#.to_string();
        let bad_exp = format!(r#"{{"Code":"Success",{full},"Expiration":"soon"}}"#);
        let url = serve(&[
            ("PUT", TOKEN_PATH, 200, "tok"),
            ("GET", p, 200, "\n"),
            ("GET", &format!("{p}Failed"), 200, &failed),
            ("GET", &format!("{p}Junk"), 200, "<html>"),
            ("GET", &format!("{p}Partial"), 200, &partial),
            ("GET", &format!("{p}BadExp"), 200, &bad_exp),
        ])
        .await;
        let imds = Imds::new(&url, false).unwrap();
        assert_eq!(
            message(imds.credentials(None).await),
            "the metadata service lists no RAM role for this instance"
        );
        let e = |role: &'static str| {
            let imds = imds.clone();
            async move { message(imds.credentials(Some(role)).await) }
        };
        assert_eq!(
            e("Failed").await,
            format!("GET {p}Failed: Code is \"Failed\", not \"Success\"")
        );
        assert_eq!(
            e("Junk").await,
            format!("GET {p}Junk: the answer is not the expected JSON: expected value at line 1 column 1")
        );
        assert_eq!(
            e("Partial").await,
            format!("GET {p}Partial: AccessKeyId, AccessKeySecret, SecurityToken or Expiration is missing")
        );
        assert_eq!(
            e("BadExp").await,
            "Expiration \"soon\" is not YYYY-MM-DDThh:mm:ssZ"
        );
        assert_eq!(
            e("Missing").await,
            format!("GET {p}Missing: HTTP 404 (is a RAM role attached to this instance?)")
        );
    }
}
