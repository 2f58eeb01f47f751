//! `sgpolicy status`'s network side: one GET of a daemon's `/status.json`, with basic credentials
//! when given, bounded in time and size, every failure a [`FetchError`] that says what to do.

use crate::ecs::credentials::Secret;
use serde_json::Value;
use std::time::Duration;

/// The largest document read: 10,000 groups are about 6 MB (docs/status.md), so this leaves room
/// for ten times that and still bounds what a wrong `--addr` can make the command hold.
pub const MAX_BYTES: usize = 64 * 1024 * 1024;
/// The whole request, connect to last byte.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Where the daemon is and who asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `http://HOST:PORT` (from `--addr HOST:PORT`) or the URL given, without a trailing `/`.
    pub base: String,
    /// (user, password) for HTTP basic authentication.
    pub credentials: Option<(String, Secret)>,
}

impl Target {
    pub fn url(&self) -> String {
        format!("{}/status.json", self.base)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error(
        "{url} wants credentials (401): give --auth-file FILE holding user:password, one of the users of the daemon's --status-auth-file"
    )]
    Unauthorized { url: String },
    #[error("{url} refused the credentials of --auth-file (401)")]
    Refused { url: String },
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url} sent more than {MAX_BYTES} bytes; is --addr the daemon's --status-addr?")]
    TooLarge { url: String },
    #[error("{url} did not answer JSON ({reason}); is --addr the daemon's --status-addr?")]
    NotJson { url: String, reason: String },
}

/// The error's chain, for people (reqwest's own message is only its outermost layer).
fn reason(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.dedup();
    parts.join(": ")
}

/// GETs `target`'s `/status.json`.
pub async fn fetch(target: &Target) -> Result<Value, FetchError> {
    let url = target.url();
    let unreachable = |e: reqwest::Error| FetchError::Unreachable {
        url: url.clone(),
        reason: reason(&e),
    };
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(unreachable)?;
    let mut request = client.get(&url).header("accept", "application/json");
    if let Some((user, password)) = &target.credentials {
        request = request.basic_auth(user, Some(password.expose()));
    }
    let response = request.send().await.map_err(unreachable)?;
    match response.status().as_u16() {
        200 => {}
        401 if target.credentials.is_some() => return Err(FetchError::Refused { url }),
        401 => return Err(FetchError::Unauthorized { url }),
        status => return Err(FetchError::Status { url, status }),
    }
    let mut body = Vec::new();
    let mut response = response;
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if body.len() + chunk.len() > MAX_BYTES {
            return Err(FetchError::TooLarge { url });
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| FetchError::NotJson {
        url,
        reason: e.to_string(),
    })
}
