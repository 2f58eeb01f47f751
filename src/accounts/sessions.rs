//! Sessions in other accounts: `AssumeRole` into `account.roleArn` with the chain's own credentials,
//! one cached, background-refreshed session per (role ARN, external id).
//!
//! This is the STS half of "many accounts" (a policy file naming `account: {roleArn, externalId}`):
//! the reconciler asks [`Accounts::session`] for the credentials of each file's account and builds
//! one ECS client per account (`crate::accounts`).

use crate::credentials::chain::ChainOptions;
use crate::credentials::refresh::{FetchFn, RefreshPolicy, RefreshStatus, Refreshing};
use crate::credentials::sts::{RoleRequest, Sts, StsError};
use crate::credentials::{self, ErrorKind};
use crate::ecs::credentials::CredentialSource;
pub use crate::model::AccountRef;
use crate::model::BadRoleArn;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why an account's session could not be had. Not cached: the next pass tries again.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The role ARN has no account id in it.
    #[error(transparent)]
    RoleArn(#[from] BadRoleArn),
    /// The first `AssumeRole` into the account failed.
    #[error("assuming {role_arn}: {source}")]
    Assume {
        role_arn: String,
        #[source]
        source: credentials::Error,
    },
}

impl SessionError {
    /// A bad role ARN is configuration; a failed `AssumeRole` is whatever its cause is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SessionError::RoleArn(_) => ErrorKind::Config,
            SessionError::Assume { source, .. } => source.kind(),
        }
    }
}

/// Assumed-role sessions per account, created on first use and refreshed in the background.
pub struct Accounts {
    base: Arc<dyn CredentialSource>,
    sts: Sts,
    refresh: RefreshPolicy,
    sessions: tokio::sync::Mutex<BTreeMap<AccountRef, Arc<Refreshing>>>,
}

impl Accounts {
    /// `base` is the chain's identity; `opts` gives the STS endpoint and the refresh policy.
    pub fn new(base: Arc<dyn CredentialSource>, opts: &ChainOptions) -> Result<Accounts, StsError> {
        Ok(Accounts {
            base,
            sts: opts.sts(None, None)?,
            refresh: opts.refresh,
            sessions: tokio::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// The session for `account`. A failure is not cached: the next pass tries again.
    pub async fn session(&self, account: &AccountRef) -> Result<Arc<Refreshing>, SessionError> {
        // Held across the first AssumeRole so concurrent callers share one session.
        let mut sessions = self.sessions.lock().await;
        if let Some(s) = sessions.get(account) {
            return Ok(s.clone());
        }
        let mut request = RoleRequest::new(account.role_arn.clone());
        request.external_id = account.external_id.clone();
        let (sts, base) = (self.sts.clone(), self.base.clone());
        let fetch: FetchFn = Arc::new(move || {
            let (sts, base, request) = (sts.clone(), base.clone(), request.clone());
            Box::pin(async move {
                let creds = base
                    .current()
                    .map_err(credentials::Error::ChainCredentials)?;
                Ok(sts.assume_role(&creds, &request).await?)
            })
        });
        let provider = format!("account/{}", account.account_id()?);
        let session = Refreshing::start(provider, fetch, self.refresh)
            .await
            .map_err(|source| SessionError::Assume {
                role_arn: account.role_arn.clone(),
                source,
            })?;
        sessions.insert(account.clone(), session.clone());
        Ok(session)
    }

    /// Refresh health of every session, for metrics.
    pub async fn statuses(&self) -> Vec<(String, RefreshStatus)> {
        self.sessions
            .lock()
            .await
            .iter()
            .map(|(a, s)| (a.role_arn.clone(), s.status()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_are_checked() {
        let a = AccountRef::new("acs:ram::1234567890123456:role/sgpolicy", Some(" ext ")).unwrap();
        assert_eq!(a.account_id().unwrap(), "1234567890123456");
        assert_eq!(a.external_id.as_deref(), Some("ext"));
        assert!(!format!("{a:?}").contains("ext\""), "{a:?}");
        for bad in [
            "",
            "acs:ram::abc:role/x",
            "acs:ram::123:user/x",
            "acs:ram::123:role/",
            "arn:aws:iam::123:role/x",
        ] {
            assert!(AccountRef::new(bad, None).is_err(), "{bad}");
        }
    }

    /// The messages, word for word: an unreachable account's report quotes them.
    #[tokio::test]
    async fn messages_word_for_word() {
        use crate::credentials::testing::{closed_port, message};
        use crate::ecs::credentials::{Credentials, Secret};
        let base: Arc<dyn CredentialSource> = Arc::new(Credentials {
            access_key_id: "LTAIbase".into(),
            access_key_secret: Secret::new("base-secret"),
            security_token: None,
        });
        let mut opts = ChainOptions {
            sts_endpoint: Some("http://192.0.2.1/".into()),
            ..ChainOptions::default()
        };
        assert_eq!(
            message(Accounts::new(base.clone(), &opts)),
            "refusing plain http endpoint http://192.0.2.1/: signed requests would cross the network unencrypted; use https, a loopback address, or pass --insecure-http"
        );
        opts.sts_endpoint = Some(closed_port());
        let accounts = Accounts::new(base, &opts).unwrap();
        let bad = AccountRef {
            role_arn: "acs:ram::x:role/r".into(),
            external_id: None,
        };
        assert_eq!(
            message(accounts.session(&bad).await),
            "roleArn \"acs:ram::x:role/r\" is not acs:ram::<account id>:role/<role name>"
        );
        let good = AccountRef::new("acs:ram::1:role/r", None).unwrap();
        let e = message(accounts.session(&good).await);
        assert!(
            e.starts_with(
                "assuming acs:ram::1:role/r: AssumeRole at 127.0.0.1: connection failed: "
            ),
            "{e}"
        );

        // A bad role ARN is configuration; STS out of reach stays what it is inside "assuming ...".
        let e = accounts.session(&bad).await.unwrap_err();
        assert!(matches!(e, SessionError::RoleArn(_)), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Config);
        let e = accounts.session(&good).await.unwrap_err();
        assert!(matches!(e, SessionError::Assume { .. }), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Unreachable);
        assert!(
            accounts.statuses().await.is_empty(),
            "failures are not cached"
        );
    }
}
