//! Temporary credentials (STS, ECS instance role) kept fresh by a background task.
//!
//! Why a task and not refresh-on-read: [`CredentialSource::current`] is synchronous and is called for
//! every request, so a pass must never wait on STS. The task refreshes ahead of expiry (15 minutes,
//! the official SDKs' "stale time"; the ECS role provider also refreshes at least hourly, like the
//! SDK's prefetch). A failed refresh keeps the old credentials while they are valid, is logged and is
//! visible in [`RefreshStatus`]; credentials within `safety` of their expiry are never handed out.

use super::error::Error;
use super::sts::BadExpiration;
use crate::ecs::credentials::{CredentialError, CredentialSource, Credentials};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

/// Credentials with an end of life.
#[derive(Clone, Debug)]
pub struct Temporary {
    pub credentials: Credentials,
    pub expiration: DateTime<Utc>,
}

impl Temporary {
    /// From the four fields STS and the metadata service both answer with; `None` when any is
    /// missing, so each caller can say where it looked.
    pub fn from_fields(
        id: Option<String>,
        secret: Option<String>,
        token: Option<String>,
        expiration: Option<String>,
    ) -> Option<Result<Temporary, BadExpiration>> {
        let (id, secret, token, exp) = (id?, secret?, token?, expiration?);
        Some(
            super::sts::parse_expiration(&exp).map(|expiration| Temporary {
                credentials: Credentials {
                    access_key_id: id,
                    access_key_secret: crate::ecs::credentials::Secret::new(secret),
                    security_token: Some(crate::ecs::credentials::Secret::new(token)),
                },
                expiration,
            }),
        )
    }
}

/// One fetch of fresh temporary credentials; the error is already safe to print.
pub type FetchFn = Arc<dyn Fn() -> BoxFuture<'static, Result<Temporary, Error>> + Send + Sync>;

/// When to refresh and what counts as too close to expiry.
#[derive(Clone, Copy, Debug)]
pub struct RefreshPolicy {
    /// Refresh this long before expiry.
    pub ahead: Duration,
    /// Refresh at least this often even when expiry is far (`None`: only `ahead` applies).
    pub max_age: Option<Duration>,
    /// Credentials expiring within this window are not used: one request attempt must fit.
    pub safety: Duration,
    /// First delay after a failed refresh; doubles per consecutive failure up to `retry_cap`.
    pub retry_base: Duration,
    pub retry_cap: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            ahead: Duration::from_secs(15 * 60),
            max_age: None,
            safety: Duration::from_secs(60),
            retry_base: Duration::from_secs(10),
            retry_cap: Duration::from_secs(5 * 60),
        }
    }
}

/// What metrics and health checks can read about a refreshing source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefreshStatus {
    /// Which link of the chain, e.g. `oidc_role_arn` or `cli_profile/ram_role_arn`.
    pub provider: String,
    /// Unix seconds at which the credentials in use expire.
    pub expiration_unix: i64,
    /// Unix seconds of the last successful fetch.
    pub last_success_unix: i64,
    /// Successful fetches, the first included.
    pub refreshes: u64,
    /// Failed fetches since the last success.
    pub consecutive_failures: u64,
    /// The last failure, kept until the next success.
    pub last_error: Option<String>,
}

/// A [`CredentialSource`] backed by a background refresh task. Dropping the last `Arc` stops the task.
pub struct Refreshing {
    state: RwLock<State>,
    policy: RefreshPolicy,
}

/// Shows the status only: never the credentials.
impl std::fmt::Debug for Refreshing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refreshing")
            .field("status", &self.status())
            .finish()
    }
}

struct State {
    current: Temporary,
    status: RefreshStatus,
}

impl Refreshing {
    /// Fetches once (the caller learns right away whether this link works), then keeps refreshing in
    /// the background. Needs a tokio runtime.
    pub async fn start(
        provider: impl Into<String>,
        fetch: FetchFn,
        policy: RefreshPolicy,
    ) -> Result<Arc<Refreshing>, Error> {
        let provider = provider.into();
        let first = fetch().await?;
        let now = Utc::now();
        if !usable(&first, now, policy.safety) {
            return Err(Error::ExpiresTooSoon {
                expiration: first.expiration,
            });
        }
        let status = RefreshStatus {
            provider,
            expiration_unix: first.expiration.timestamp(),
            last_success_unix: now.timestamp(),
            refreshes: 1,
            consecutive_failures: 0,
            last_error: None,
        };
        let me = Arc::new(Refreshing {
            state: RwLock::new(State {
                current: first,
                status,
            }),
            policy,
        });
        tokio::spawn(refresh_loop(Arc::downgrade(&me), fetch));
        Ok(me)
    }

    pub fn status(&self) -> RefreshStatus {
        self.read(|s| s.status.clone())
    }

    /// When the current credentials expire.
    pub fn expiration(&self) -> DateTime<Utc> {
        self.read(|s| s.current.expiration)
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        // A poisoned lock only means a panic elsewhere; the value inside is still consistent.
        let guard = self.state.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    fn write<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut guard = self.state.write().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// How long the task sleeps before its next fetch.
    fn next_delay(&self, now: DateTime<Utc>) -> Duration {
        self.read(|s| {
            let p = &self.policy;
            if s.status.consecutive_failures > 0 {
                let exp = s.status.consecutive_failures.min(16) as u32 - 1;
                return p.retry_base.saturating_mul(1 << exp).min(p.retry_cap);
            }
            let remaining = (s.current.expiration - now)
                .to_std()
                .unwrap_or(Duration::ZERO);
            let mut delay = if remaining > p.ahead {
                remaining - p.ahead
            } else {
                // Issued with less life than `ahead`: refresh halfway through what is left.
                remaining / 2
            };
            if let Some(max_age) = p.max_age {
                let age = (now.timestamp() - s.status.last_success_unix).max(0) as u64;
                delay = delay.min(max_age.saturating_sub(Duration::from_secs(age)));
            }
            delay.max(Duration::from_secs(1))
        })
    }

    fn install(&self, fresh: Temporary) {
        let now = Utc::now();
        if !usable(&fresh, now, self.policy.safety) {
            self.fail(&Error::RefreshedExpiresTooSoon {
                expiration: fresh.expiration,
            });
            return;
        }
        self.write(|s| {
            s.status.expiration_unix = fresh.expiration.timestamp();
            s.status.last_success_unix = now.timestamp();
            s.status.refreshes += 1;
            s.status.consecutive_failures = 0;
            s.status.last_error = None;
            s.current = fresh;
        });
        let st = self.status();
        tracing::debug!(provider = %st.provider, expiration = st.expiration_unix, "credentials refreshed");
    }

    fn fail(&self, error: &Error) {
        let (provider, failures, exp) = self.write(|s| {
            s.status.consecutive_failures += 1;
            s.status.last_error = Some(error.to_string());
            (
                s.status.provider.clone(),
                s.status.consecutive_failures,
                s.current.expiration,
            )
        });
        tracing::warn!(
            provider = %provider,
            consecutive_failures = failures,
            valid_until = %exp.format("%Y-%m-%dT%H:%M:%SZ"),
            "refreshing credentials failed; keeping the current ones until they expire: {error}"
        );
    }
}

fn usable(t: &Temporary, now: DateTime<Utc>, safety: Duration) -> bool {
    let safety = chrono::Duration::from_std(safety).unwrap_or(chrono::Duration::MAX);
    now.checked_add_signed(safety)
        .is_some_and(|limit| t.expiration > limit)
}

async fn refresh_loop(me: Weak<Refreshing>, fetch: FetchFn) {
    loop {
        let delay = match me.upgrade() {
            Some(r) => r.next_delay(Utc::now()),
            None => return,
        };
        tokio::time::sleep(delay).await;
        if me.strong_count() == 0 {
            return;
        }
        let result = fetch().await;
        let Some(r) = me.upgrade() else { return };
        match result {
            Ok(fresh) => r.install(fresh),
            Err(e) => r.fail(&e),
        }
    }
}

impl CredentialSource for Refreshing {
    fn current(&self) -> Result<Credentials, CredentialError> {
        let now = Utc::now();
        self.read(|s| {
            if usable(&s.current, now, self.policy.safety) {
                return Ok(s.current.credentials.clone());
            }
            let why = s
                .status
                .last_error
                .as_deref()
                .map(|e| format!("refreshing failed: {e}"))
                .unwrap_or_else(|| "a refresh is still pending".to_string());
            Err(CredentialError::Unavailable(format!(
                "the temporary credentials from {} expire at {} and are no longer used; {why}",
                s.status.provider,
                s.current.expiration.format("%Y-%m-%dT%H:%M:%SZ")
            )))
        })
    }
}

impl CredentialSource for Arc<Refreshing> {
    fn current(&self) -> Result<Credentials, CredentialError> {
        self.as_ref().current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::testing::message;
    use crate::ecs::credentials::Secret;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn temp(n: u64, life: chrono::Duration) -> Temporary {
        Temporary {
            credentials: Credentials {
                access_key_id: format!("STS.{n}"),
                access_key_secret: Secret::new(format!("secret-{n}")),
                security_token: Some(Secret::new(format!("token-{n}"))),
            },
            expiration: Utc::now() + life,
        }
    }

    fn fast() -> RefreshPolicy {
        RefreshPolicy {
            ahead: Duration::from_secs(3),
            max_age: None,
            safety: Duration::from_secs(1),
            retry_base: Duration::from_millis(100),
            retry_cap: Duration::from_millis(400),
        }
    }

    #[test]
    fn delay_is_ahead_of_expiry_and_backs_off_after_failures() {
        let policy = RefreshPolicy::default();
        let r = Refreshing {
            state: RwLock::new(State {
                current: temp(1, chrono::Duration::hours(1)),
                status: RefreshStatus {
                    last_success_unix: Utc::now().timestamp(),
                    ..RefreshStatus::default()
                },
            }),
            policy,
        };
        let d = r.next_delay(Utc::now());
        assert!(
            d <= Duration::from_secs(45 * 60) && d > Duration::from_secs(44 * 60),
            "{d:?}"
        );
        r.write(|s| s.status.consecutive_failures = 1);
        assert_eq!(r.next_delay(Utc::now()), Duration::from_secs(10));
        r.write(|s| s.status.consecutive_failures = 10);
        assert_eq!(r.next_delay(Utc::now()), Duration::from_secs(300));
        // Short-lived credentials: refresh halfway.
        r.write(|s| {
            s.status.consecutive_failures = 0;
            s.current = temp(2, chrono::Duration::minutes(10));
        });
        let d = r.next_delay(Utc::now());
        assert!(
            d <= Duration::from_secs(300) && d >= Duration::from_secs(298),
            "{d:?}"
        );
        // max_age caps it (the ECS role provider refreshes hourly).
        let r2 = Refreshing {
            state: RwLock::new(State {
                current: temp(3, chrono::Duration::hours(6)),
                status: RefreshStatus {
                    last_success_unix: Utc::now().timestamp(),
                    ..RefreshStatus::default()
                },
            }),
            policy: RefreshPolicy {
                max_age: Some(Duration::from_secs(3600)),
                ..policy
            },
        };
        assert!(r2.next_delay(Utc::now()) <= Duration::from_secs(3600));
    }

    #[tokio::test]
    async fn refreshes_in_the_background_and_keeps_old_credentials_on_failure() {
        let calls = Arc::new(AtomicU64::new(0));
        let c = calls.clone();
        let fetch: FetchFn = Arc::new(move || {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move {
                if n == 1 || n == 2 {
                    Ok(temp(n, chrono::Duration::seconds(5)))
                } else {
                    Err(Error::SourceCredentials(CredentialError::Unavailable(
                        format!("sts down (attempt {n})"),
                    )))
                }
            })
        });
        let r = Refreshing::start("test", fetch, fast()).await.unwrap();
        assert_eq!(r.current().unwrap().access_key_id, "STS.1");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        // Second credentials arrive without anyone asking.
        while r.current().map(|c| c.access_key_id).ok() != Some("STS.2".into()) {
            assert!(
                std::time::Instant::now() < deadline,
                "no refresh: {:?}",
                r.status()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Then refreshes fail: STS.2 stays in use while valid, the error is visible, and once it
        // is within the safety window it is refused rather than used.
        loop {
            let st = r.status();
            match r.current() {
                Ok(c) => {
                    assert_eq!(c.access_key_id, "STS.2");
                    assert!(Utc::now().timestamp() < st.expiration_unix);
                }
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.contains("sts down"), "{msg}");
                    assert!(!msg.contains("secret-2") && !msg.contains("token-2"));
                    assert!(st.consecutive_failures >= 1 && st.last_error.is_some());
                    break;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never expired: {st:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn a_first_fetch_that_is_already_expiring_is_refused() {
        let fetch: FetchFn =
            Arc::new(|| Box::pin(async { Ok(temp(1, chrono::Duration::seconds(-5))) }));
        let e = Refreshing::start("test", fetch, fast())
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("too soon"), "{e}");
    }

    fn at_2020(n: u64) -> Temporary {
        Temporary {
            expiration: DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            ..temp(n, chrono::Duration::zero())
        }
    }

    /// The messages, word for word.
    #[tokio::test]
    async fn messages_word_for_word() {
        let fetch: FetchFn = Arc::new(|| Box::pin(async { Ok(at_2020(1)) }));
        assert_eq!(
            message(Refreshing::start("test", fetch, fast()).await),
            "the credentials received expire at 2020-01-01T00:00:00Z, too soon to use"
        );
        let fetch: FetchFn =
            Arc::new(|| Box::pin(async { Ok(temp(1, chrono::Duration::hours(1))) }));
        let r = Refreshing::start("test", fetch, RefreshPolicy::default())
            .await
            .unwrap();
        r.install(at_2020(2));
        let st = r.status();
        assert_eq!(
            st.last_error.as_deref(),
            Some("the refreshed credentials expire at 2020-01-01T00:00:00Z, too soon to use")
        );
        assert_eq!((st.consecutive_failures, st.refreshes), (1, 1));
        assert_eq!(r.current().unwrap().access_key_id, "STS.1");
    }
}
