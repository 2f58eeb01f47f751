//! One ECS client per account: the credential chain's own for files without `account:`, and one per
//! assumed role for files that name one. The reconciler asks for the client of each group's account;
//! the first request for an account assumes its role (`sessions`), later ones reuse the session,
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
use crate::ecs::{Cloud, EcsClient};
use crate::model::{Account, AccountRef};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

/// The action name failures to reach an account are reported under.
pub const ASSUME_ROLE: &str = "AssumeRole";
/// The code of those failures: the groups of that account cannot be read this pass.
pub const ACCOUNT_UNAVAILABLE: &str = "AccountUnavailable";

/// An account whose groups cannot be reached this pass. Only that account's groups fail; it is not
/// cached, so the next pass tries again.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{ASSUME_ROLE}: {ACCOUNT_UNAVAILABLE}: account {account}{why}")]
pub struct Unreachable {
    pub account: String,
    pub why: Why,
}

/// Why an account is unreachable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Why {
    #[error(": no file names a role for it")]
    NoRole,
    #[error(": this client cannot assume roles")]
    CannotAssumeRoles,
    /// STS refused or could not be reached; its reason, redacted.
    #[error(": {0}")]
    AssumeRoleFailed(String),
    #[error(" was not resolved for this pass")]
    NotResolved,
}

impl Unreachable {
    /// The message alone, as the audit line's `error` shows it.
    pub fn message(&self) -> String {
        format!("account {}{}", self.account, self.why)
    }
}

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

    /// ActionTrail call counts of every account's client together, apart from [`Clients::stats`]
    /// (see [`EcsClient::trail_stats`]).
    pub fn trail_stats(&self) -> &CallStats {
        self.base.trail_stats()
    }

    /// The client for `account` (empty: the chain's own); `role` is the role the policy files name
    /// for it. A failure (STS refused, no role declared) is returned as a per-group error so that
    /// only that account's groups are affected; it is not cached, so the next pass tries again.
    pub async fn get(
        &self,
        account: &str,
        role: Option<&AccountRef>,
    ) -> Result<EcsClient, Unreachable> {
        if Account::of(account) == Account::Own {
            return Ok(self.base.clone());
        }
        let unavailable = |why: Why| Unreachable {
            account: account.to_string(),
            why,
        };
        let role = role.ok_or_else(|| unavailable(Why::NoRole))?;
        let accounts = self
            .accounts
            .as_ref()
            .ok_or_else(|| unavailable(Why::CannotAssumeRoles))?;
        let mut by_role = self.by_role.lock().await;
        if let Some(c) = by_role.get(role) {
            return Ok(c.clone());
        }
        let session = accounts
            .session(role)
            .await
            .map_err(|e| unavailable(Why::AssumeRoleFailed(e.to_string())))?;
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
pub struct Reach<C = EcsClient> {
    by_account: BTreeMap<String, Result<C, Unreachable>>,
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

impl<C> Reach<C> {
    /// The clients of a pass as given (tests: scripted fakes); unlisted accounts are unreachable.
    pub fn of(by_account: impl IntoIterator<Item = (String, Result<C, Unreachable>)>) -> Reach<C> {
        Reach {
            by_account: by_account.into_iter().collect(),
        }
    }

    /// The clients back, by account (tests check their scripts with it).
    pub fn into_clients(self) -> BTreeMap<String, Result<C, Unreachable>> {
        self.by_account
    }

    /// One pass's handles on these clients: each call is counted in `tally` too (see
    /// [`Cloud::counting_into`]).
    pub fn counting_into(&self, tally: &Arc<CallStats>) -> Reach<C>
    where
        C: Cloud,
    {
        let by_account = self.by_account.iter().map(|(account, client)| {
            let handle = match client {
                Ok(c) => Ok(c.counting_into(tally)),
                Err(e) => Err(e.clone()),
            };
            (account.clone(), handle)
        });
        Reach {
            by_account: by_account.collect(),
        }
    }

    /// The client for `account`, or why that account cannot be reached this pass.
    pub fn client(&self, account: &str) -> Result<&C, Unreachable> {
        match self.by_account.get(account) {
            Some(Ok(c)) => Ok(c),
            Some(Err(e)) => Err(e.clone()),
            None => Err(Unreachable {
                account: account.to_string(),
                why: Why::NotResolved,
            }),
        }
    }
}

/// Where the daemon's passes get their clients: the real [`Clients`] (roles assumed, one rate
/// limiter per account) or, in the daemon's unit tests, a fake over any [`Cloud`]. The daemon asks
/// only for the clients of one pass and for the call counts, so this is its whole view of the cloud.
pub trait Fleet: Send + Sync + 'static {
    type Client: Cloud;
    /// The clients of `accounts` (ids, empty for the chain's own); `roles` is `Desired::accounts`.
    fn reach_accounts<'a>(
        &'a self,
        accounts: Vec<&'a str>,
        roles: &'a BTreeMap<String, AccountRef>,
    ) -> impl Future<Output = Reach<Self::Client>> + 'a;
    /// ECS call counts of every client together.
    fn calls(&self) -> &CallStats;
    /// ActionTrail call counts, apart from [`Fleet::calls`].
    fn trail_calls(&self) -> &CallStats;
}

impl Fleet for Clients {
    type Client = EcsClient;

    fn reach_accounts<'a>(
        &'a self,
        accounts: Vec<&'a str>,
        roles: &'a BTreeMap<String, AccountRef>,
    ) -> impl Future<Output = Reach<EcsClient>> + 'a {
        self.reach(accounts, roles)
    }

    fn calls(&self) -> &CallStats {
        self.stats()
    }

    fn trail_calls(&self) -> &CallStats {
        self.trail_stats()
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
        assert_eq!(e.why, Why::CannotAssumeRoles);
        assert_eq!(
            e.to_string(),
            "AssumeRole: AccountUnavailable: account 2222222222222222: this client cannot assume roles"
        );
        let e = reach.client("3333333333333333").err().expect("no role");
        assert_eq!(e.why, Why::NoRole);
        assert!(e.message().contains("no file names a role"), "{e}");
        let e = reach
            .client("4444444444444444")
            .err()
            .expect("not resolved");
        assert_eq!(
            e.message(),
            "account 4444444444444444 was not resolved for this pass"
        );
    }
}
