//! The ECS instance RAM role through the instance metadata service, as the official SDKs read it.
//!
//! IMDSv2 first: `PUT /latest/api/token` with `X-aliyun-ecs-metadata-token-ttl-seconds: 21600`, then
//! GETs carrying `X-aliyun-ecs-metadata-token`. If the token cannot be had, or a GET with it fails,
//! the SDK falls back to plain (v1) GETs unless `ALIBABA_CLOUD_IMDSV1_DISABLED=true`. The role name
//! comes from `ALIBABA_CLOUD_ECS_METADATA` (or a profile), else from the listing
//! `GET /latest/meta-data/ram/security-credentials/`. Timeouts are one second, as in the SDK.

use super::refresh::Temporary;
use crate::ecs::credentials::Secret;
use crate::ecs::error::transport_cause;
use reqwest::Url;
use serde::Deserialize;
use std::time::Duration;

pub const DEFAULT_ENDPOINT: &str = "http://100.100.100.200";
const TOKEN_PATH: &str = "/latest/api/token";
const CREDENTIALS_PATH: &str = "/latest/meta-data/ram/security-credentials/";
const TOKEN_TTL_SECS: &str = "21600";

/// The metadata service is plain HTTP on a link-local address; an override (for tests) must be the
/// real address or a loopback one, never a host across the network.
pub fn validate_endpoint(endpoint: &str) -> Result<Url, String> {
    let url =
        Url::parse(endpoint).map_err(|e| format!("invalid metadata endpoint {endpoint:?}: {e}"))?;
    let host_ok = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.octets() == [100, 100, 100, 200],
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    if url.scheme() != "http" || !host_ok {
        return Err(format!(
            "metadata endpoint {endpoint} must be http://100.100.100.200 or a loopback address"
        ));
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
    pub fn new(endpoint: &str, imdsv1_disabled: bool) -> Result<Imds, String> {
        let base = validate_endpoint(endpoint)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .map_err(|e| format!("building the metadata HTTP client: {e}"))?;
        Ok(Imds {
            http,
            base,
            imdsv1_disabled,
        })
    }

    fn url(&self, path: &str) -> Result<Url, String> {
        self.base
            .join(path)
            .map_err(|e| format!("metadata path {path}: {e}"))
    }

    /// The IMDSv2 session token; `None` means "use v1" (only when v1 is allowed).
    async fn token(&self) -> Result<Option<Secret>, String> {
        let result = async {
            let r = self
                .http
                .put(self.url(TOKEN_PATH)?)
                .header("X-aliyun-ecs-metadata-token-ttl-seconds", TOKEN_TTL_SECS)
                .send()
                .await
                .map_err(|e| transport_cause(&e))?;
            let status = r.status().as_u16();
            if status != 200 {
                return Err(format!("HTTP {status}"));
            }
            r.text()
                .await
                .map(Secret::new)
                .map_err(|e| transport_cause(&e))
        }
        .await;
        match result {
            Ok(t) => Ok(Some(t)),
            Err(e) if self.imdsv1_disabled => Err(format!(
                "getting the IMDSv2 token from {}: {e} (IMDSv1 is disabled by ALIBABA_CLOUD_IMDSV1_DISABLED)",
                self.base
            )),
            Err(e) => {
                tracing::debug!("no IMDSv2 token ({e}); falling back to IMDSv1");
                Ok(None)
            }
        }
    }

    async fn get(&self, path: &str, token: Option<&Secret>) -> Result<String, String> {
        let mut req = self.http.get(self.url(path)?);
        if let Some(t) = token {
            req = req.header("X-aliyun-ecs-metadata-token", t.expose());
        }
        let r = req
            .send()
            .await
            .map_err(|e| format!("GET {path}: {}", transport_cause(&e)))?;
        let status = r.status().as_u16();
        if status != 200 {
            return Err(format!(
                "GET {path}: HTTP {status} (is a RAM role attached to this instance?)"
            ));
        }
        r.text()
            .await
            .map_err(|e| format!("GET {path}: {}", transport_cause(&e)))
    }

    /// A GET with the v2 token, retried without it when the SDK would (token obtained, v1 allowed).
    async fn get_with_fallback(
        &self,
        path: &str,
        token: Option<&Secret>,
    ) -> Result<String, String> {
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
    pub async fn role_name(&self) -> Result<String, String> {
        let token = self.token().await?;
        let text = self
            .get_with_fallback(CREDENTIALS_PATH, token.as_ref())
            .await?;
        text.lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_string)
            .ok_or_else(|| "the metadata service lists no RAM role for this instance".to_string())
    }

    /// Fresh credentials for `role` (looked up first when `None`), with a fresh v2 token each time.
    pub async fn credentials(&self, role: Option<&str>) -> Result<Temporary, String> {
        let role = match role.filter(|r| !r.is_empty()) {
            Some(r) => r.to_string(),
            None => self.role_name().await?,
        };
        if role.contains('/') || role.contains("..") {
            return Err(format!("RAM role name {role:?} is not a plain name"));
        }
        let token = self.token().await?;
        let path = format!("{CREDENTIALS_PATH}{role}");
        let text = self.get_with_fallback(&path, token.as_ref()).await?;
        let c: RoleCredentials = serde_json::from_str(&text)
            .map_err(|e| format!("GET {path}: the answer is not the expected JSON: {e}"))?;
        if c.code.as_deref() != Some("Success") {
            return Err(format!(
                "GET {path}: Code is {:?}, not \"Success\"",
                c.code.unwrap_or_default()
            ));
        }
        Temporary::from_fields(
            c.access_key_id,
            c.access_key_secret,
            c.security_token,
            c.expiration,
        )
        .unwrap_or_else(|| {
            Err(format!(
                "GET {path}: AccessKeyId, AccessKeySecret, SecurityToken or Expiration is missing"
            ))
        })
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
