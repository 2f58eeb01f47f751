//! One ECS client per account: the credential chain's own for files without `account:`, and one per
//! assumed role for files that name one. The reconciler asks for the client of each group's account;
//! the first request for an account assumes its role (`ecs::accounts`), later ones reuse the session,
//! which refreshes itself in the background.
//!
//! Every client shares the HTTP connection pool and the call counts, so a pass still reports one set
//! of figures, but each has its own rate limiter: ECS quotas are per account and region, and a
//! throttled account must not slow the others down.

pub mod connect;
pub mod sessions;

use crate::accounts::sessions::Accounts;
use crate::credentials::refresh::RefreshStatus;
use crate::ecs::client::CallStats;
use crate::ecs::{ApiError, EcsClient};
use crate::model::AccountRef;
use std::collections::BTreeMap;

/// The action name failures to reach an account are reported under.
pub const ASSUME_ROLE: &str = "AssumeRole";
/// The code of those failures: the groups of that account cannot be read this pass.
pub const ACCOUNT_UNAVAILABLE: &str = "AccountUnavailable";

pub struct Clients {
    base: EcsClient,
    /// `None` when built for a single account (tests, tools): a named account is then an error.
    accounts: Option<Accounts>,
    /// The clients themselves, not just the sessions `Accounts` caches: each carries its account's
    /// rate limiter, whose learned rate must outlive a pass.
    by_role: tokio::sync::Mutex<BTreeMap<AccountRef, EcsClient>>,
}

impl Clients {
    /// Clients that can reach other accounts by assuming the roles the policy files name.
    pub fn new(base: EcsClient, accounts: Accounts) -> Clients {
        Clients {
            base,
            accounts: Some(accounts),
            by_role: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Only the chain's own account.
    pub fn single(base: EcsClient) -> Clients {
        Clients {
            base,
            accounts: None,
            by_role: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Call counts of every account's client together.
    pub fn stats(&self) -> &CallStats {
        self.base.stats()
    }

    /// The client for `account` (empty: the chain's own); `role` is the role the policy files name
    /// for it. A failure (STS refused, no role declared) is returned as a per-group error so that
    /// only that account's groups are affected; it is not cached, so the next pass tries again.
    pub async fn get(
        &self,
        account: &str,
        role: Option<&AccountRef>,
    ) -> Result<EcsClient, ApiError> {
        if account.is_empty() {
            return Ok(self.base.clone());
        }
        let unavailable = |why: String| {
            ApiError::transport(
                ASSUME_ROLE,
                ACCOUNT_UNAVAILABLE,
                format!("account {account}: {why}"),
            )
        };
        let role = role.ok_or_else(|| unavailable("no file names a role for it".into()))?;
        let accounts = self
            .accounts
            .as_ref()
            .ok_or_else(|| unavailable("this client cannot assume roles".into()))?;
        let mut by_role = self.by_role.lock().await;
        if let Some(c) = by_role.get(role) {
            return Ok(c.clone());
        }
        let session = accounts.session(role).await.map_err(unavailable)?;
        tracing::info!(
            account,
            role = %role.role_arn,
            expires = %session.expiration().format("%Y-%m-%dT%H:%M:%SZ"),
            "assumed role"
        );
        let client = self.base.for_account(account, session);
        by_role.insert(role.clone(), client.clone());
        Ok(client)
    }

    /// Refresh health of every assumed-role session, for metrics (`provider` is `account/<id>`).
    pub async fn session_statuses(&self) -> Vec<RefreshStatus> {
        match &self.accounts {
            Some(a) => a.statuses().await.into_iter().map(|(_, s)| s).collect(),
            None => Vec::new(),
        }
    }
}

/// The client of every account one pass needs, resolved once at its start so that a pass assumes
/// each role at most once and every group of an unreachable account fails the same way.
pub struct Reach {
    by_account: BTreeMap<String, Result<EcsClient, ApiError>>,
}

impl Clients {
    /// Resolves the clients of `accounts` (ids, empty for the chain's own); `roles` is
    /// `Desired::accounts`.
    pub async fn reach<'a>(
        &self,
        accounts: impl IntoIterator<Item = &'a str>,
        roles: &BTreeMap<String, AccountRef>,
    ) -> Reach {
        let mut by_account = BTreeMap::new();
        for account in accounts {
            if !by_account.contains_key(account) {
                let client = self.get(account, roles.get(account)).await;
                if let Err(e) = &client {
                    tracing::warn!(account, "{e}");
                }
                by_account.insert(account.to_string(), client);
            }
        }
        Reach { by_account }
    }
}

impl Reach {
    /// The client for `account`, or why that account cannot be reached this pass.
    pub fn client(&self, account: &str) -> Result<&EcsClient, ApiError> {
        match self.by_account.get(account) {
            Some(Ok(c)) => Ok(c),
            Some(Err(e)) => Err(e.clone()),
            None => Err(ApiError::transport(
                ASSUME_ROLE,
                ACCOUNT_UNAVAILABLE,
                format!("account {account} was not resolved for this pass"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::credentials::Secret;
    use crate::ecs::{ClientConfig, Credentials};
    use std::sync::Arc;

    fn base() -> EcsClient {
        let creds = Credentials {
            access_key_id: "id".into(),
            access_key_secret: Secret::new("secret"),
            security_token: None,
        };
        EcsClient::new(ClientConfig::default(), Arc::new(creds)).expect("client")
    }

    #[tokio::test]
    async fn the_chains_own_account_needs_no_role_and_a_named_one_does() {
        let clients = Clients::single(base());
        let role = AccountRef::new("acs:ram::2222222222222222:role/x", None).expect("arn");
        let roles = BTreeMap::from([("2222222222222222".to_string(), role)]);
        let reach = clients
            .reach(["", "2222222222222222", "3333333333333333", ""], &roles)
            .await;
        assert!(reach.client("").is_ok());
        let e = reach.client("2222222222222222").err().expect("no STS here");
        assert_eq!(
            (e.action, e.code.as_str()),
            (ASSUME_ROLE, ACCOUNT_UNAVAILABLE)
        );
        assert!(e.message.contains("cannot assume roles"), "{e}");
        let e = reach.client("3333333333333333").err().expect("no role");
        assert!(e.message.contains("no file names a role"), "{e}");
        // Per group, not fatal: only that account's groups are affected.
        assert_ne!(e.class(), crate::ecs::ErrorClass::Fatal);
        let e = reach
            .client("4444444444444444")
            .err()
            .expect("not resolved");
        assert!(e.message.contains("not resolved"), "{e}");
    }
}
