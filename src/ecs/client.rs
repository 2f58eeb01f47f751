//! The HTTP adapter: one signed RPC call per attempt, retries with backoff, and per-action call counts.
//!
//! Requests are `POST /` with every parameter (common, business, `Signature`) in an
//! `application/x-www-form-urlencoded` body, all signed; ECS accepts parameters from the query or the
//! body alike. Keeping them out of the URL keeps the signature and any STS token out of logs.

use super::api::{self, AttributeResponse, GroupsResponse};
use super::credentials::CredentialSource;
use super::error::{transport_cause, ApiError, EcsError, ErrorClass};
use super::limit::{Limiter, RateLimits};
use super::sign;
use super::trail;
use crate::model::{GroupKey, GroupMeta, Policy};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Url;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Send every call here instead of `https://ecs.<region>.aliyuncs.com`.
    pub endpoint: Option<String>,
    /// Send every ActionTrail call here instead of `https://actiontrail.<region>.aliyuncs.com`
    /// (`--actiontrail-endpoint`); the same loopback / `allow_insecure_http` rule as `endpoint`.
    pub actiontrail_endpoint: Option<String>,
    /// Public or VPC region endpoints (ignored when `endpoint` is set).
    pub endpoint_type: super::endpoint::EndpointType,
    /// Allow a plain-http endpoint that is not a loopback address (a simulator on another host).
    pub allow_insecure_http: bool,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Client-side rate limits per (region, action); see `limit`.
    pub rate_limits: RateLimits,
    /// How long one call keeps retrying throttled answers (they do not use up `max_attempts`).
    pub throttle_budget: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            endpoint: None,
            actiontrail_endpoint: None,
            endpoint_type: super::endpoint::EndpointType::Public,
            allow_insecure_http: false,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            max_attempts: 6,
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(10),
            rate_limits: RateLimits::default(),
            throttle_budget: Duration::from_secs(600),
        }
    }
}

/// An endpoint flag that sgpolicy will not send signed requests to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadEndpoint {
    #[error("invalid endpoint {endpoint:?}: {reason} (expected e.g. https://ecs.cn-hangzhou.aliyuncs.com)")]
    Unparsable { endpoint: String, reason: String },
    #[error("refusing plain http endpoint {endpoint}: signed requests would cross the network unencrypted; use https, a loopback address, or pass --insecure-http")]
    PlainHttp { endpoint: String },
    #[error("endpoint {endpoint} has scheme {scheme:?}; expected https")]
    Scheme { endpoint: String, scheme: String },
}

/// Why no client could be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Endpoint(#[from] BadEndpoint),
    #[error("building the HTTP client: {0}")]
    Http(String),
}

/// Rejects endpoints that would send signed requests in clear text over a real network.
pub fn validate_endpoint(endpoint: &str, allow_insecure_http: bool) -> Result<Url, BadEndpoint> {
    let url = Url::parse(endpoint).map_err(|e| BadEndpoint::Unparsable {
        endpoint: endpoint.to_string(),
        reason: e.to_string(),
    })?;
    match url.scheme() {
        "https" => Ok(url),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
                Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
                Some(url::Host::Domain(d)) => d == "localhost",
                None => false,
            };
            if loopback || allow_insecure_http {
                Ok(url)
            } else {
                Err(BadEndpoint::PlainHttp {
                    endpoint: endpoint.to_string(),
                })
            }
        }
        other => Err(BadEndpoint::Scheme {
            endpoint: endpoint.to_string(),
            scheme: other.to_string(),
        }),
    }
}

/// Calls of one account and action by outcome code.
type ByOutcome = BTreeMap<String, u64>;

/// Calls made, by account, action and outcome code (`OK` for success), so passes and metrics can
/// report them. Shared by the clients of every account so a pass has one set of figures.
#[derive(Default, Debug)]
pub struct CallStats {
    /// By account, action and outcome, nested so that counting a call looks its key up without
    /// allocating it.
    counts: Mutex<BTreeMap<String, BTreeMap<String, ByOutcome>>>,
    retries: AtomicU64,
    throttled: AtomicU64,
}

impl CallStats {
    /// Counts one answer (`outcome`: `OK`, an error code, `Transport`, `Timeout`).
    pub fn record(&self, account: &str, action: &str, outcome: &str) {
        let mut c = self.counts();
        let known = c
            .get_mut(account)
            .and_then(|by_action| by_action.get_mut(action))
            .and_then(|by_outcome| by_outcome.get_mut(outcome));
        match known {
            Some(n) => *n += 1,
            None => {
                *c.entry(account.to_string())
                    .or_default()
                    .entry(action.to_string())
                    .or_default()
                    .entry(outcome.to_string())
                    .or_default() += 1;
            }
        }
    }

    /// Calls by (action, outcome), all accounts together.
    pub fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        let mut out = BTreeMap::new();
        for ((_, action, outcome), n) in self.snapshot_by_account() {
            *out.entry((action, outcome)).or_default() += n;
        }
        out
    }

    /// Calls by (account, action, outcome); the account is empty for the chain's own.
    pub fn snapshot_by_account(&self) -> BTreeMap<(String, String, String), u64> {
        let c = self.counts();
        let mut out = BTreeMap::new();
        for (account, by_action) in c.iter() {
            for (action, by_outcome) in by_action {
                for (outcome, n) in by_outcome {
                    out.insert((account.clone(), action.clone(), outcome.clone()), *n);
                }
            }
        }
        out
    }

    /// The counts, even after a thread panicked holding them: a count is one increment, never left
    /// half-made, so a poisoned lock is used as it is rather than losing every later call.
    fn counts(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeMap<String, ByOutcome>>> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn count_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    fn count_throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    /// Attempts repeated after a retryable error other than throttling.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Throttled answers (`Throttling*`), each of which was retried while the budget allowed.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    /// Total HTTP requests sent for `action`, whatever their outcome.
    pub fn total(&self, action: &str) -> u64 {
        self.snapshot()
            .iter()
            .filter(|((a, _), _)| a == action)
            .map(|(_, n)| n)
            .sum()
    }
}

/// The API a call goes to: its endpoint, version, call counts and limiter key. Every call of every
/// service is signed, sent, retried and paced by the same code (`call_as`, `call_once`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Service {
    /// ECS 2014-05-26 at `ecs[-vpc].<region>.aliyuncs.com`, paced per (region, action).
    Ecs,
    /// ActionTrail 2020-07-06 at `actiontrail.<region>.aliyuncs.com`, paced per account: one
    /// limiter bucket for all regions (ActionTrail's quota is per account).
    ActionTrail,
}

impl Service {
    fn version(self) -> &'static str {
        match self {
            Service::Ecs => api::VERSION,
            Service::ActionTrail => trail::VERSION,
        }
    }

    /// The "region" half of the limiter's (region, action) key.
    fn limiter_key(self, region: &str) -> &str {
        match self {
            Service::Ecs => region,
            Service::ActionTrail => trail::ACCOUNT_WIDE,
        }
    }
}

/// The configured ceilings with ActionTrail's own quota on top: `LookupEvents` never goes faster
/// than [`trail::MAX_RPS`], whatever `--max-rps` says.
fn client_limits(limits: &RateLimits) -> RateLimits {
    let mut limits = limits.clone();
    let ceiling = limits.ceiling(trail::LOOKUP_EVENTS).min(trail::MAX_RPS);
    limits
        .per_action
        .insert(trail::LOOKUP_EVENTS.to_string(), ceiling);
    limits
}

#[derive(Clone)]
pub struct EcsClient {
    /// The account this client's credentials belong to (empty: the chain's own), for call counts.
    account: String,
    http: reqwest::Client,
    config: ClientConfig,
    endpoint: Option<Url>,
    actiontrail_endpoint: Option<Url>,
    credentials: Arc<dyn CredentialSource>,
    stats: Arc<CallStats>,
    /// ActionTrail calls are counted apart: a reconcile pass reports its `api_calls` as a diff of
    /// `stats`, and a poll running at the same time must not show up in it.
    trail_stats: Arc<CallStats>,
    /// The tally of the one pass this handle serves ([`EcsClient::counting_into`]): its ECS calls are
    /// counted there as well as in `stats`, so two passes running at once on the same clients (the
    /// daemon's two lanes) each report only the calls they made, not a diff of shared counters.
    pass_tally: Option<Arc<CallStats>>,
    limiter: Arc<Limiter>,
}

/// A successful answer read as `T` straight from its bytes: the fields `T` does not name (rule lists,
/// descriptions) are skipped, never built into a tree. Only when that fails is the answer read the way
/// it always was, as text into a tree and the tree into `T`, so the outcome and its message do not
/// change: not JSON at all is the outer error (retried like a transport failure), JSON of another
/// shape the inner one (the call's answer, not retried).
fn read_json<T: serde::de::DeserializeOwned>(
    action: &'static str,
    body: &[u8],
) -> Result<Result<T, ApiError>, ApiError> {
    if let Ok(parsed) = serde_json::from_slice(body) {
        return Ok(Ok(parsed));
    }
    let malformed = |message: String| ApiError::transport(action, "MalformedResponse", message);
    let tree: serde_json::Value = serde_json::from_str(&String::from_utf8_lossy(body))
        .map_err(|_| malformed("the response body is not JSON".into()))?;
    Ok(serde_json::from_value(tree).map_err(|e| malformed(e.to_string())))
}

// Built once: a header named by a `&str` is parsed and copied on every request.
const X_ACS_ACTION: HeaderName = HeaderName::from_static("x-acs-action");
const X_ACS_VERSION: HeaderName = HeaderName::from_static("x-acs-version");

/// `Timestamp` as the RPC API wants it: UTC, to the second, `2016-02-23T12:46:24Z`.
pub(crate) fn rpc_timestamp(now: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write;
    let mut s = String::with_capacity(20);
    let _ = write!(
        s,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        now.month(),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    s
}

impl EcsClient {
    pub fn new(
        config: ClientConfig,
        credentials: Arc<dyn CredentialSource>,
    ) -> Result<Self, ClientError> {
        let endpoint = match &config.endpoint {
            Some(e) => Some(validate_endpoint(e, config.allow_insecure_http)?),
            None => None,
        };
        let actiontrail_endpoint = match &config.actiontrail_endpoint {
            Some(e) => Some(validate_endpoint(e, config.allow_insecure_http)?),
            None => None,
        };
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("sgpolicy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Http(e.to_string()))?;
        Ok(EcsClient {
            account: String::new(),
            limiter: Arc::new(Limiter::new(client_limits(&config.rate_limits))),
            http,
            config,
            endpoint,
            actiontrail_endpoint,
            credentials,
            stats: Arc::new(CallStats::default()),
            trail_stats: Arc::new(CallStats::default()),
            pass_tally: None,
        })
    }

    /// The same client (same account, limiter, connection pool and shared counts) whose ECS calls are
    /// also counted in `tally`: one pass's handle.
    pub fn counting_into(&self, tally: &Arc<CallStats>) -> EcsClient {
        EcsClient {
            pass_tally: Some(tally.clone()),
            ..self.clone()
        }
    }

    /// Counts of the ECS calls of every account's client.
    pub fn stats(&self) -> &CallStats {
        &self.stats
    }

    /// Counts of the ActionTrail calls (`LookupEvents`) of every account's client, kept apart from
    /// [`EcsClient::stats`] so a pass's figures hold only the pass's own calls.
    pub fn trail_stats(&self) -> &CallStats {
        &self.trail_stats
    }

    /// Where a call of `service` is counted: the shared counts, and this handle's pass for ECS calls.
    fn counters(&self, service: Service) -> impl Iterator<Item = &CallStats> {
        let (shared, pass) = match service {
            Service::Ecs => (&self.stats, self.pass_tally.as_deref()),
            Service::ActionTrail => (&self.trail_stats, None),
        };
        std::iter::once(&**shared).chain(pass)
    }

    /// Counts one answer of `action` (`outcome`: `OK`, an error code, `Transport`, `Timeout`).
    fn count(&self, service: Service, action: &str, outcome: &str) {
        for stats in self.counters(service) {
            stats.record(&self.account, action, outcome);
        }
    }

    /// A client for another account: same HTTP pool, configuration and call counts, its own
    /// credentials and its own rate limiter, because ECS quotas are per account and region.
    pub fn for_account(
        &self,
        account: impl Into<String>,
        credentials: Arc<dyn CredentialSource>,
    ) -> EcsClient {
        EcsClient {
            account: account.into(),
            credentials,
            limiter: Arc::new(Limiter::new(client_limits(&self.config.rate_limits))),
            pass_tally: None,
            ..self.clone()
        }
    }

    fn url_for(&self, service: Service, region: &str) -> Result<Url, EcsError> {
        let (fixed, regional) = match service {
            Service::Ecs => (
                &self.endpoint,
                super::endpoint::ecs_url(region, self.config.endpoint_type),
            ),
            Service::ActionTrail => (
                &self.actiontrail_endpoint,
                super::endpoint::actiontrail_url(region),
            ),
        };
        match fixed {
            Some(u) => Ok(u.clone()),
            None => Url::parse(&regional).map_err(|e| EcsError::InvalidEndpoint {
                region: region.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// One page of ActionTrail `LookupEvents` in `region`, newest first: the events
    /// `query.filter` selects in `[query.start, query.end]`. Pass the previous page's `next_token` for
    /// the next one (the query itself must be the same). `RegionId` is sent too, as the legacy
    /// ActionTrail SDK does, so a single `--actiontrail-endpoint` still tells regions apart.
    pub async fn lookup_events(
        &self,
        region: &str,
        query: &trail::EventQuery,
        next_token: Option<&str>,
    ) -> Result<trail::EventPage, EcsError> {
        let (start, end) = (rpc_timestamp(query.start), rpc_timestamp(query.end));
        let mut params: Vec<(&str, &str)> = vec![
            ("RegionId", region),
            ("StartTime", &start),
            ("EndTime", &end),
            ("MaxResults", trail::MAX_RESULTS),
        ];
        const KEYS: [[&str; 2]; 2] = [
            ["LookupAttribute.1.Key", "LookupAttribute.1.Value"],
            ["LookupAttribute.2.Key", "LookupAttribute.2.Value"],
        ];
        for ([k, v], (key, value)) in KEYS.iter().zip(query.filter.attributes()) {
            params.push((k, key));
            params.push((v, value));
        }
        if let Some(t) = next_token {
            params.push(("NextToken", t));
        }
        let parsed: trail::LookupResponse = self
            .call_as(Service::ActionTrail, trail::LOOKUP_EVENTS, region, &params)
            .await?;
        Ok(parsed.into())
    }

    /// Reads one group's InnerAccessPolicy.
    pub async fn describe_attribute(&self, key: &GroupKey) -> Result<Policy, EcsError> {
        let parsed: AttributeResponse = self
            .call_as(
                Service::Ecs,
                api::DESCRIBE_ATTRIBUTE,
                &key.region,
                &[
                    ("RegionId", &key.region),
                    ("SecurityGroupId", &key.id),
                    ("MaxResults", api::SMALLEST_RULE_PAGE),
                ],
            )
            .await?;
        parsed.policy().ok_or_else(|| {
            ApiError::transport(
                api::DESCRIBE_ATTRIBUTE,
                "MalformedResponse",
                "InnerAccessPolicy is missing or neither Accept nor Drop",
            )
            .into()
        })
    }

    /// One page of a group's rules (`MaxResults=1000`, all directions) with its policy and VPC: the
    /// isolation check's read, which also serves the pass's policy read when the check is on.
    pub async fn describe_rules(
        &self,
        key: &GroupKey,
        next_token: Option<&str>,
    ) -> Result<api::RulePage, EcsError> {
        let mut params: Vec<(&str, &str)> = vec![
            ("RegionId", &key.region),
            ("SecurityGroupId", &key.id),
            ("MaxResults", api::LARGEST_RULE_PAGE),
        ];
        if let Some(t) = next_token {
            params.push(("NextToken", t));
        }
        let parsed: api::RulesResponse = self
            .call_as(Service::Ecs, api::DESCRIBE_ATTRIBUTE, &key.region, &params)
            .await?;
        Ok(parsed.into())
    }

    /// One page of the network interfaces of one VPC (`MaxResults=500`). Never filtered by security
    /// group: that filter returns secondary interfaces only.
    pub async fn describe_interfaces(
        &self,
        region: &str,
        vpc_id: &str,
        next_token: Option<&str>,
    ) -> Result<api::InterfacePage, EcsError> {
        let mut params: Vec<(&str, &str)> = vec![
            ("RegionId", region),
            ("VpcId", vpc_id),
            ("MaxResults", api::LARGEST_INTERFACE_PAGE),
        ];
        if let Some(t) = next_token {
            params.push(("NextToken", t));
        }
        let parsed: api::InterfacesResponse = self
            .call_as(Service::Ecs, api::DESCRIBE_INTERFACES, region, &params)
            .await?;
        Ok(parsed.into())
    }

    /// One prefix list's entries.
    pub async fn describe_prefix_list(
        &self,
        region: &str,
        id: &str,
    ) -> Result<api::PrefixList, EcsError> {
        let parsed: api::PrefixListResponse = self
            .call_as(
                Service::Ecs,
                api::DESCRIBE_PREFIX_LIST,
                region,
                &[("RegionId", region), ("PrefixListId", id)],
            )
            .await?;
        Ok(parsed.into_list(id))
    }

    /// Type and managed flags for up to 100 ids of one region. Ids absent from the map do not exist.
    pub async fn describe_groups(
        &self,
        region: &str,
        ids: &[String],
    ) -> Result<BTreeMap<String, GroupMeta>, EcsError> {
        let mut found = BTreeMap::new();
        let mut next_token: Option<String> = None;
        loop {
            let (ids, max) = (api::ids_param(ids), api::MAX_IDS_PER_DESCRIBE.to_string());
            let mut params = vec![
                ("RegionId", region),
                ("SecurityGroupIds", ids.as_str()),
                ("MaxResults", max.as_str()),
            ];
            if let Some(t) = &next_token {
                params.push(("NextToken", t));
            }
            let parsed: GroupsResponse = self
                .call_as(Service::Ecs, api::DESCRIBE_GROUPS, region, &params)
                .await?;
            for item in &parsed.security_groups.security_group {
                found.insert(item.security_group_id.clone(), item.meta());
            }
            match parsed.next_token.filter(|t| !t.is_empty()) {
                Some(t) if next_token.as_ref() != Some(&t) => next_token = Some(t),
                _ => return Ok(found),
            }
        }
    }

    /// One page of DescribeSecurityGroups over a whole region, filtered server-side by VPC and tags.
    pub async fn list_groups(
        &self,
        region: &str,
        filter: &super::GroupFilter,
        next_token: Option<&str>,
    ) -> Result<super::GroupPage, EcsError> {
        // Parameter names must be `&str` that outlive the call; built once per page.
        let tag_names: Vec<(String, String)> = (1..=filter.tags.len())
            .map(|n| (format!("Tag.{n}.Key"), format!("Tag.{n}.Value")))
            .collect();
        let max = api::MAX_IDS_PER_DESCRIBE.to_string();
        let mut params: Vec<(&str, &str)> = vec![("RegionId", region), ("MaxResults", &max)];
        if let Some(v) = &filter.vpc_id {
            params.push(("VpcId", v));
        }
        for ((k, v), (kn, vn)) in filter.tags.iter().zip(&tag_names) {
            params.push((kn, k));
            params.push((vn, v));
        }
        if let Some(t) = next_token {
            params.push(("NextToken", t));
        }
        let parsed: GroupsResponse = self
            .call_as(Service::Ecs, api::DESCRIBE_GROUPS, region, &params)
            .await?;
        Ok(super::GroupPage {
            groups: parsed
                .security_groups
                .security_group
                .into_iter()
                .map(api::GroupItem::listed)
                .collect(),
            next_token: parsed.next_token.filter(|t| !t.is_empty()),
        })
    }

    /// Sets one group's policy; returns the RequestId. The token is reused by every retry.
    pub async fn modify_policy(
        &self,
        key: &GroupKey,
        policy: Policy,
        client_token: &str,
    ) -> Result<String, EcsError> {
        let body: serde_json::Value = self
            .call_as(
                Service::Ecs,
                api::MODIFY_POLICY,
                &key.region,
                &[
                    ("RegionId", &key.region),
                    ("SecurityGroupId", &key.id),
                    ("InnerAccessPolicy", policy.as_str()),
                    ("ClientToken", client_token),
                ],
            )
            .await?;
        Ok(body
            .get("RequestId")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string())
    }

    /// One logical call, its answer read as `T` (see [`read_json`]): paced by the rate limiter, retried
    /// while the error is retryable, each attempt freshly signed. Throttled answers slow the limiter
    /// down and are retried for up to `throttle_budget` without using up `max_attempts`: throttling
    /// means "later", not "failed". A region without an endpoint and missing credentials fail before
    /// any request, unretried.
    async fn call_as<T: serde::de::DeserializeOwned>(
        &self,
        service: Service,
        action: &'static str,
        region: &str,
        params: &[(&str, &str)],
    ) -> Result<T, EcsError> {
        let url = self.url_for(service, region)?;
        let bucket = service.limiter_key(region);
        let throttle_budget = match service {
            Service::Ecs => self.config.throttle_budget,
            Service::ActionTrail => self.config.throttle_budget.min(trail::THROTTLE_BUDGET),
        };
        let mut attempt = 0u32;
        let mut first_throttle: Option<Instant> = None;
        loop {
            let sent_at = self.limiter.acquire(bucket, action).await;
            let creds =
                self.credentials
                    .current()
                    .map_err(|e| EcsError::CredentialsUnavailable {
                        action,
                        reason: e.to_string(),
                    })?;
            let result = self.call_once(service, action, &url, params, &creds).await;
            let err = match result.and_then(|body| read_json(action, body.as_ref())) {
                Ok(v) => {
                    self.limiter.succeeded(bucket, action);
                    return v.map_err(EcsError::from);
                }
                Err(e) => e,
            };
            if err.is_throttling() {
                self.counters(service).for_each(CallStats::count_throttled);
                let hint = err.retry_after_ms.map(Duration::from_millis);
                self.limiter.throttled(bucket, action, sent_at, hint);
                let since = *first_throttle.get_or_insert_with(Instant::now);
                if since.elapsed() < throttle_budget {
                    tracing::debug!(action, region, code = %err.code, "throttled; retrying when the limiter allows");
                    continue;
                }
                return Err(err.into());
            }
            attempt += 1;
            if err.class() != ErrorClass::Retryable || attempt >= self.config.max_attempts {
                return Err(err.into());
            }
            self.counters(service).for_each(CallStats::count_retry);
            let delay = self.backoff(attempt, &err);
            tracing::debug!(action, region, attempt, code = %err.code, delay_ms = delay.as_millis() as u64, "retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// Full-jitter exponential backoff, never shorter than a server's retry hint.
    fn backoff(&self, attempt: u32, err: &ApiError) -> Duration {
        let base = if err.is_throttling() {
            self.config.backoff_base.max(Duration::from_millis(500))
        } else {
            self.config.backoff_base
        };
        let exp = base.saturating_mul(1u32 << attempt.min(16));
        let ceiling = exp.min(self.config.backoff_cap);
        let jittered = ceiling.mul_f64(0.5 + fastrand::f64() * 0.5);
        let hint = Duration::from_millis(err.retry_after_ms.unwrap_or(0));
        jittered.max(hint).min(self.config.backoff_cap.max(hint))
    }

    /// Sends one signed request and reads its answer: the bytes of a 2xx answer, else the error it
    /// names. Every answer (and every transport failure) is counted, once.
    async fn call_once(
        &self,
        service: Service,
        action: &'static str,
        url: &Url,
        business: &[(&str, &str)],
        creds: &super::Credentials,
    ) -> Result<impl AsRef<[u8]>, ApiError> {
        let body = signed_body(service, action, business, creds);
        let response = self
            .http
            .post(url.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .header(X_ACS_ACTION, HeaderValue::from_static(action))
            .header(X_ACS_VERSION, HeaderValue::from_static(service.version()))
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                let code = if e.is_timeout() {
                    "Timeout"
                } else {
                    "Transport"
                };
                self.count(service, action, code);
                // reqwest's Display includes the URL with its signed query: keep only the cause.
                return Err(ApiError::transport(action, code, transport_cause(&e)));
            }
        };
        let status = response.status().as_u16();
        let retry_after_ms = response
            .headers()
            .get("x-acs-retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let text = match response.bytes().await {
            Ok(t) => t,
            Err(e) => {
                self.count(service, action, "Transport");
                return Err(ApiError::transport(
                    action,
                    "Transport",
                    transport_cause(&e),
                ));
            }
        };
        if (200..300).contains(&status) {
            self.count(service, action, "OK");
            return Ok(text);
        }
        let err = error_answer(action, status, retry_after_ms, text.as_ref(), creds);
        self.count(service, action, &err.code);
        Err(err)
    }
}

/// The error a non-2xx answer names: its code, message and RequestId from the JSON body (either
/// capitalisation), or the status and the body's first 200 characters when it is not JSON. Secrets a
/// server echoed are scrubbed: a SignatureDoesNotMatch message quotes the string to sign,
/// SecurityToken included.
fn error_answer(
    action: &'static str,
    status: u16,
    retry_after_ms: Option<u64>,
    body: &[u8],
    creds: &super::Credentials,
) -> ApiError {
    let text = String::from_utf8_lossy(body);
    let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    let field = |names: &[&str]| -> Option<String> {
        let obj = json.as_ref()?.as_object()?;
        names
            .iter()
            .find_map(|n| obj.get(*n).and_then(|v| v.as_str()).map(str::to_string))
    };
    let message =
        field(&["Message", "message"]).unwrap_or_else(|| text.chars().take(200).collect());
    let secrets = [
        creds.access_key_secret.expose(),
        creds
            .security_token
            .as_ref()
            .map(|t| t.expose())
            .unwrap_or(""),
    ];
    ApiError {
        action,
        status: Some(status),
        code: field(&["Code", "code"]).unwrap_or_else(|| format!("HTTP{status}")),
        message: super::redact::redact(&message, &secrets),
        request_id: field(&["RequestId", "requestId"]),
        retry_after_ms,
    }
}

/// The form body of one request: the common parameters (a fresh nonce and timestamp), `business`,
/// and the signature over both. Everything, the signature and any SecurityToken included, travels in
/// the body: URLs end up in proxy and library logs, bodies do not. The signature covers the same set
/// either way.
fn signed_body(
    service: Service,
    action: &'static str,
    business: &[(&str, &str)],
    creds: &super::Credentials,
) -> Vec<u8> {
    let mut nonce = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let nonce = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut nonce);
    let timestamp = rpc_timestamp(chrono::Utc::now());
    let mut common: Vec<(&str, &str)> = Vec::with_capacity(10);
    common.extend([
        ("Action", action),
        ("Version", service.version()),
        ("Format", "JSON"),
        ("AccessKeyId", &creds.access_key_id),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", nonce),
        ("Timestamp", &timestamp),
    ]);
    if let Some(token) = &creds.security_token {
        common.push(("SecurityToken", token.expose()));
    }
    let business = || business.iter().copied();
    let signature = sign::sign(
        "POST",
        common.iter().copied().chain(business()),
        creds.access_key_secret.expose(),
    );
    common.push(("Signature", &signature));
    let mut body = Vec::with_capacity(1024);
    for (k, v) in common.iter().copied().chain(business()) {
        if !body.is_empty() {
            body.push(b'&');
        }
        sign::encode_into(&mut body, k);
        body.push(b'=');
        sign::encode_into(&mut body, v);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_only_for_loopback_unless_allowed() {
        assert!(validate_endpoint("http://127.0.0.1:8080", false).is_ok());
        assert!(validate_endpoint("http://localhost:8080", false).is_ok());
        assert!(validate_endpoint("http://[::1]:8080", false).is_ok());
        let e = validate_endpoint("http://10.0.0.5:8080", false).unwrap_err();
        assert!(e.to_string().contains("--insecure-http"), "{e}");
        assert!(validate_endpoint("http://10.0.0.5:8080", true).is_ok());
        assert!(validate_endpoint("https://ecs.cn-hangzhou.aliyuncs.com", false).is_ok());
        assert!(validate_endpoint("ftp://x", true).is_err());
        assert!(validate_endpoint("not a url", true).is_err());
    }

    #[test]
    fn calls_are_still_counted_after_a_thread_panicked_holding_the_counts() {
        let stats = Arc::new(CallStats::default());
        let poisoner = stats.clone();
        let _ = std::thread::spawn(move || {
            let _held = poisoner.counts.lock();
            panic!("a thread panics while holding the counts");
        })
        .join();
        assert!(stats.counts.is_poisoned());
        stats.record("", "A", "OK");
        assert_eq!(stats.total("A"), 1);
    }

    #[test]
    fn another_accounts_client_shares_the_call_counts_but_not_the_rate_limiter() {
        let creds = crate::ecs::Credentials {
            access_key_id: "id".into(),
            access_key_secret: crate::ecs::credentials::Secret::new("s"),
            security_token: None,
        };
        let own = EcsClient::new(ClientConfig::default(), Arc::new(creds.clone())).expect("client");
        let prod = own.for_account("2222222222222222", Arc::new(creds));
        let before = own.limiter.rate("r", "A");
        prod.limiter
            .throttled("r", "A", tokio::time::Instant::now(), Some(Duration::ZERO));
        assert!(
            prod.limiter.rate("r", "A") < before,
            "the throttled account slows down"
        );
        assert_eq!(
            own.limiter.rate("r", "A"),
            before,
            "the other account does not"
        );
        prod.stats.record(&prod.account, "A", "OK");
        own.stats.record(&own.account, "A", "OK");
        assert_eq!(own.stats().total("A"), 2, "one set of figures for the pass");
        let by_account = own.stats().snapshot_by_account();
        assert_eq!(
            by_account[&("2222222222222222".into(), "A".into(), "OK".into())],
            1
        );
        assert_eq!(by_account[&(String::new(), "A".into(), "OK".into())], 1);
    }

    #[test]
    fn lookup_events_is_paced_once_per_account_at_most_at_actiontrails_quota() {
        let creds = crate::ecs::Credentials {
            access_key_id: "id".into(),
            access_key_secret: crate::ecs::credentials::Secret::new("s"),
            security_token: None,
        };
        let client = EcsClient::new(ClientConfig::default(), Arc::new(creds.clone())).unwrap();
        let key = Service::ActionTrail.limiter_key("cn-hangzhou");
        assert_eq!(
            key,
            Service::ActionTrail.limiter_key("cn-beijing"),
            "one bucket for all regions"
        );
        assert_eq!(
            client.limiter.rate(key, trail::LOOKUP_EVENTS),
            trail::MAX_RPS
        );
        assert_eq!(client.limiter.rate("cn-hangzhou", api::MODIFY_POLICY), 20.0);
        let slow = ClientConfig {
            rate_limits: RateLimits {
                default_rps: 1.0,
                ..RateLimits::default()
            },
            ..ClientConfig::default()
        };
        let client = EcsClient::new(slow, Arc::new(creds)).unwrap();
        let other = client.for_account("2222222222222222", client.credentials.clone());
        assert_eq!(
            other.limiter.rate(key, trail::LOOKUP_EVENTS),
            1.0,
            "a lower --max-rps wins"
        );
    }

    #[test]
    fn an_actiontrail_endpoint_follows_the_endpoint_rule() {
        let creds = crate::ecs::Credentials {
            access_key_id: "id".into(),
            access_key_secret: crate::ecs::credentials::Secret::new("s"),
            security_token: None,
        };
        let config = |e: &str| ClientConfig {
            actiontrail_endpoint: Some(e.to_string()),
            ..ClientConfig::default()
        };
        let e = EcsClient::new(config("http://10.0.0.5:8080"), Arc::new(creds.clone()))
            .err()
            .expect("plain http to another host");
        assert!(e.to_string().contains("--insecure-http"), "{e}");
        let c = EcsClient::new(config("http://127.0.0.1:9/"), Arc::new(creds.clone())).unwrap();
        assert_eq!(
            c.url_for(Service::ActionTrail, "cn-hangzhou")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/"
        );
        assert_eq!(
            c.url_for(Service::Ecs, "cn-hangzhou").unwrap().as_str(),
            "https://ecs.cn-hangzhou.aliyuncs.com/",
            "the ECS endpoint is not overridden by it"
        );
        let c = EcsClient::new(ClientConfig::default(), Arc::new(creds)).unwrap();
        assert_eq!(
            c.url_for(Service::ActionTrail, "cn-shanghai")
                .unwrap()
                .as_str(),
            "https://actiontrail.cn-shanghai.aliyuncs.com/"
        );
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Shape {
        #[serde(rename = "A")]
        a: Option<String>,
    }

    #[test]
    fn answers_are_read_as_before_the_direct_read() {
        let read = |body: &[u8]| read_json::<Shape>("X", body);
        assert_eq!(
            read(br#"{"A":"x","Rules":[{"B":[1,"2",{"C":null}]}]}"#),
            Ok(Ok(Shape {
                a: Some("x".into())
            }))
        );
        let not_json = read(b"<html>").unwrap_err();
        assert_eq!(
            (not_json.code.as_str(), not_json.message.as_str()),
            ("MalformedResponse", "the response body is not JSON")
        );
        assert_eq!(not_json.class(), ErrorClass::Retryable);
        let shape = read(br#"{"A":1}"#).unwrap().unwrap_err();
        assert_eq!(
            shape.message,
            serde_json::from_value::<Shape>(serde_json::json!({"A": 1}))
                .unwrap_err()
                .to_string()
        );
        // Bytes that are not UTF-8 were read as text with replacement characters, and still are.
        assert_eq!(
            read(b"{\"A\":\"\xff\"}"),
            Ok(Ok(Shape {
                a: Some("\u{fffd}".into())
            }))
        );
        // A field named twice: the tree kept the last value.
        assert_eq!(
            read(br#"{"A":"1","A":"2"}"#),
            Ok(Ok(Shape {
                a: Some("2".into())
            }))
        );
    }

    #[test]
    fn timestamps_are_the_strftime_spelling() {
        use chrono::TimeZone;
        for t in [0, 951_782_400, 1_456_231_584, 4_102_444_799] {
            let now = chrono::Utc.timestamp_opt(t, 999_000_000).unwrap();
            assert_eq!(
                rpc_timestamp(now),
                now.format("%Y-%m-%dT%H:%M:%SZ").to_string()
            );
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_hints() {
        let creds = crate::ecs::Credentials {
            access_key_id: "id".into(),
            access_key_secret: crate::ecs::credentials::Secret::new("s"),
            security_token: None,
        };
        let client = EcsClient::new(ClientConfig::default(), Arc::new(creds)).unwrap();
        let err = ApiError::transport("X", "Transport", "boom");
        for attempt in 1..20 {
            let d = client.backoff(attempt, &err);
            assert!(d <= Duration::from_secs(10), "{d:?}");
            let floor = Duration::from_millis(200)
                .saturating_mul(1 << attempt.min(16))
                .min(Duration::from_secs(10))
                / 2;
            assert!(d >= floor, "attempt {attempt}: {d:?} < {floor:?}");
        }
        let mut hinted = err.clone();
        hinted.retry_after_ms = Some(30_000);
        assert_eq!(client.backoff(1, &hinted), Duration::from_secs(30));
    }
}
