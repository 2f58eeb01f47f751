//! Credentials and the secret wrapper that keeps them out of logs.
//!
//! For now the source is the environment (`ALIBABA_CLOUD_ACCESS_KEY_ID`, `..._SECRET`, optional
//! `ALIBABA_CLOUD_SECURITY_TOKEN`). The client asks a [`CredentialSource`] for the current value on
//! every request, so a refreshing source can be dropped in without touching the client.

use std::fmt;

/// A string that must never be printed. `Debug` and `Display` redact; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One usable identity. The key id is not secret (it appears in ActionTrail); the rest is.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub access_key_secret: Secret,
    pub security_token: Option<Secret>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &self.access_key_secret)
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("{0} is not set: export it, or set both ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET")]
    MissingVariable(&'static str),
    #[error("credentials unavailable: {0}")]
    Unavailable(String),
}

/// Where the client gets the identity to sign each request with.
pub trait CredentialSource: Send + Sync {
    fn current(&self) -> Result<Credentials, CredentialError>;
}

impl CredentialSource for Credentials {
    fn current(&self) -> Result<Credentials, CredentialError> {
        Ok(self.clone())
    }
}

impl Credentials {
    /// Reads the environment through `get` (an argument, so tests need not mutate the process env).
    pub fn from_env_with(get: impl Fn(&str) -> Option<String>) -> Result<Self, CredentialError> {
        let non_empty = |name: &'static str| get(name).filter(|v| !v.is_empty());
        let id = non_empty("ALIBABA_CLOUD_ACCESS_KEY_ID").ok_or(
            CredentialError::MissingVariable("ALIBABA_CLOUD_ACCESS_KEY_ID"),
        )?;
        let secret = non_empty("ALIBABA_CLOUD_ACCESS_KEY_SECRET").ok_or(
            CredentialError::MissingVariable("ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
        )?;
        Ok(Credentials {
            access_key_id: id,
            access_key_secret: Secret::new(secret),
            security_token: non_empty("ALIBABA_CLOUD_SECURITY_TOKEN").map(Secret::new),
        })
    }

    pub fn from_env() -> Result<Self, CredentialError> {
        Self::from_env_with(|name| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            owned
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn missing_variables_are_named() {
        let e = Credentials::from_env_with(env(&[])).unwrap_err();
        assert_eq!(
            e,
            CredentialError::MissingVariable("ALIBABA_CLOUD_ACCESS_KEY_ID")
        );
        let e =
            Credentials::from_env_with(env(&[("ALIBABA_CLOUD_ACCESS_KEY_ID", "id")])).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("ALIBABA_CLOUD_ACCESS_KEY_SECRET is not set"));
    }

    #[test]
    fn debug_never_shows_secret_or_token() {
        let c = Credentials::from_env_with(env(&[
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAIkeyid"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "s3cr3t-value"),
            ("ALIBABA_CLOUD_SECURITY_TOKEN", "sts-token-value"),
        ]))
        .unwrap();
        let shown = format!("{c:?} {}", c.access_key_secret);
        assert!(shown.contains("LTAIkeyid"));
        assert!(!shown.contains("s3cr3t-value"));
        assert!(!shown.contains("sts-token-value"));
        assert_eq!(
            c.security_token.as_ref().map(Secret::expose),
            Some("sts-token-value")
        );
    }
}
