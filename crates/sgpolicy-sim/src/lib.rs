//! sgpolicy's built-in ECS simulator: an Alibaba Cloud ECS (and STS `AssumeRole`, and ActionTrail
//! `LookupEvents`) RPC endpoint faithful enough that the official SDKs use it unchanged, plus the
//! EventBridge push of ActionTrail events to HTTP targets. The agent serves it as `sgpolicy sim`;
//! its integration tests and the benchmark run it in-process.
//!
//! This crate does not depend on the agent (`scripts/check-layers.sh` checks it): its model types,
//! its role-ARN parser, its percent-encoder and canonicalisers are its own, so the compiler, not a
//! convention, keeps a bug in the agent's signer or parsers from being masked by the same bug here.
//!
//! # Layout
//! - `model`: [`Policy`] and the role-ARN parser. `seed`: the YAML starting state.
//!   `state`: groups (with their rules), keys, STS sessions, ClientTokens, nonces, the bounded call
//!   log and the call counters ([`CallCounts`], exact however many entries the log has dropped), the
//!   event store. `rules`: a security group rule (seeded or written) checked and rendered. `net`:
//!   network interfaces (indexed by region, VPC and instance) and prefix lists.
//! - `auth`: signature V1 verification with its own canonicaliser; `auth_v3`: signature V3
//!   (`ACS3-HMAC-SHA256`, the Tea SDK's default). `handlers`: the `Api` table and the three
//!   security group actions sgpolicy enforces with; `handlers_net`: DescribeNetworkInterfaces and
//!   DescribePrefixListAttributes; `writes`: Authorize/RevokeSecurityGroup and
//!   Join/LeaveSecurityGroup. `sts`: STS `AssumeRole` and `lookup`: ActionTrail `LookupEvents`, on
//!   the same endpoint.
//! - `trail`: the ActionTrail event record, the identities it names, the event store; `push`:
//!   EventBridge (CloudEvents envelopes POSTed to loopback targets).
//! - `respond`: error bodies and JSON/XML rendering. `faults`: injected latency, errors, throttling;
//!   `chaos`: the rate-based modes and throttling windows.
//! - `admin`: the unsigned `/_sim/...` paths; `console`: the rule and membership changes they (and
//!   tests) make as a console user. `conn`: connections a `drop` fault can cut (and the peer
//!   address events record). `raw`: the pipeline without HTTP, for fuzzing.
//!
//! Every request to `/` passes, in order: parameter parsing (query and form body merged), injected
//! latency, signature checks, nonce freshness, Version and Action (each action is judged by its own
//! API's version: ECS 2014-05-26, STS 2015-04-01, ActionTrail 2020-07-06), the key's
//! `deniedActions` (403), throttling and scripted failures, the action itself; then it is logged and
//! counted, whatever its outcome, and the events it caused are handed to EventBridge.
//!
//! # Events (ActionTrail and EventBridge)
//! - Every write (ModifySecurityGroupPolicy, Authorize/RevokeSecurityGroup,
//!   Join/LeaveSecurityGroup) that reaches the action (after signature, permission, throttling and
//!   scripted failures; also one a fault applies and then loses) is an `ApiCall` event of the caller's account in the call's region, failed or not: the caller's key, identity
//!   (`root-account`, a seeded `ram-user`, or an `assumed-role` STS session with its
//!   `sessionContext`), User-Agent and peer address, the RequestId it saw (a ClientToken replay
//!   repeats the first call's) and, when it failed, `errorCode`/`errorMessage`. Reads, AssumeRole and
//!   LookupEvents are not recorded. Field list: `trail`.
//! - A console flip (`POST /_sim/groups/{region}/{id}`, [`Simulator::flip_in_console`]) is a
//!   `ConsoleOperation` by a configurable [`ConsoleActor`]; `"event": false` (and
//!   [`Simulator::set_policy`]) flips with no event at all: a missed event. Rules added or removed
//!   and interfaces joining or leaving through the admin paths ([`Simulator::add_rule`],
//!   [`Simulator::remove_rule`], [`Simulator::set_membership`]) are console operations the same way.
//! - `LookupEvents` sees only the calling key's account and the request's region (the Host's
//!   `actiontrail.<region>.aliyuncs.com`, else `RegionId`, else `actionTrail.defaultRegion`), and an
//!   event only `actionTrail.queryDelaySeconds` (default 600) after its `eventTime`. Parameters,
//!   paging and errors: `lookup`. The documented 2 calls a second per account and region is the
//!   fault `throttle: {LookupEvents: {perSecond: 2}}`.
//! - EventBridge delivers each event to every matching `eventBridge.targets` entry (loopback HTTP
//!   only) as a CloudEvents 1.0 envelope with `Authorization: Bearer <token>`, after `delayMs`, with
//!   exact `lossRate` and `duplicateRate` fractions and retries; [`Simulator::deliveries`] and
//!   [`Simulator::deliveries_settled`] let tests count and wait without timing. Details: `push`.
//!
//! Seed keys for it: `actionTrail: {queryDelaySeconds, defaultRegion}`, `eventBridge: {targets:
//! [...]}`, and per access key `userName`, `principalId`, `deniedActions` (also per role). Admin
//! paths: `GET`/`DELETE /_sim/events`, `GET`/`POST /_sim/actiontrail`, `GET`/`POST
//! /_sim/eventbridge`, `GET /_sim/eventbridge/deliveries`, and the console changes' `actor`/`event`.
//!
//! # Isolation data
//! Seed keys `permissions` (per group), `networkInterfaces` and `prefixLists`, in the API's own
//! field names (docs/scale.md has the format). Reads: DescribeSecurityGroupAttribute pages the
//! rules (`MaxResults` 10–1000, default 500, `NextToken`); DescribeNetworkInterfaces pages by token
//! or page number and, as documented, its `SecurityGroupId` filter finds secondary interfaces
//! only; DescribePrefixListAttributes. Admin: `POST /_sim/groups/{region}/{id}/rules`, `DELETE
//! /_sim/groups/{region}/{id}/rules/{rule}`, `POST`/`DELETE /_sim/enis/{region}/{eni}/groups/{group}`,
//! `GET`/`POST /_sim/enis`.

mod admin;
mod auth;
mod auth_v3;
mod chaos;
mod conn;
mod console;
mod faults;
mod handlers;
mod handlers_net;
mod lookup;
mod model;
mod net;
mod push;
mod raw;
mod respond;
mod rules;
mod seed;
mod state;
mod sts;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_accounts;
#[cfg(test)]
mod tests_describe;
#[cfg(test)]
mod tests_modify;
#[cfg(test)]
mod tests_net;
#[cfg(test)]
mod tests_push;
#[cfg(test)]
mod tests_trail;
#[cfg(test)]
mod tests_v3;
#[cfg(test)]
mod tests_writes;
mod trail;
mod writes;

pub use console::{Change, Refused};
pub use faults::{FaultConfig, ScriptedFailure, ThrottleRule};
pub use model::Policy;
pub use net::SeedEni;
pub use push::{Delivery, EventBridgeConfig, PushTarget};
pub use rules::{PriorityText, SeedRule};
pub use seed::{GroupType, Seed, SeedGroup, SeedKey, SeedRole, DEFAULT_ACCOUNT};
pub use state::{CallCounts, CallRecord, OTHER_ACTION};
pub use trail::{ConsoleActor, IdentityType, TrailConfig};

use auth::Params;
use auth_v3::SignedRequest;
use axum::extract::{ConnectInfo, Request, State as AxState};
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use conn::{ConnHandle, KillableListener};
use faults::{Faults, Verdict};
use handlers::Api;
use respond::{ApiError, Format};
use serde_json::Value;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use trail::RequestMeta;

/// Largest request body read; ECS parameters are small and this bounds memory per request.
const MAX_BODY: usize = 1 << 20;
/// Without the simulator's own listener a `drop` fault cannot close the connection; it then holds the
/// request this long instead, so the client's own timeout fires (see `serve`).
const DROP_FALLBACK: Duration = Duration::from_secs(600);

/// The simulator. Cloning is cheap and every clone shares one account.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<state::State>,
    faults: Mutex<Faults>,
    /// EventBridge; locked after `state` when both are held, never before.
    bus: Mutex<push::Bus>,
    /// Woken whenever a delivery ends ([`Simulator::deliveries_settled`]).
    push_idle: tokio::sync::Notify,
}

/// What the pipeline decided to do with one request.
enum Answer {
    Respond(Response),
    Drop,
}

impl Simulator {
    pub fn new(seed: Seed) -> Simulator {
        let bus = push::Bus::new(seed.event_bridge.clone());
        Simulator {
            inner: Arc::new(Inner {
                state: Mutex::new(state::State::new(seed)),
                faults: Mutex::new(Faults::default()),
                bus: Mutex::new(bus),
                push_idle: tokio::sync::Notify::new(),
            }),
        }
    }

    /// A poisoned lock only means another request panicked mid-way; the state is still usable.
    fn state(&self) -> MutexGuard<'_, state::State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.inner.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bus(&self) -> MutexGuard<'_, push::Bus> {
        self.inner.bus.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The whole app: the RPC endpoint at `/` and the admin paths under `/_sim/`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(rpc).post(rpc))
            .merge(admin::routes())
            .fallback(admin::not_found)
            .with_state(self.clone())
    }

    /// Serves until `shutdown` completes. Uses a listener whose connections `drop` faults can really
    /// close; with `router()` served some other way, `drop` degrades to a very long delay.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = self
            .router()
            .into_make_service_with_connect_info::<ConnHandle>();
        axum::serve(KillableListener(listener), app)
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// The call log, oldest first. It is bounded (the oldest entries go first); for how many calls
    /// of each kind there were, use [`Simulator::call_counts`].
    pub fn calls(&self) -> Vec<CallRecord> {
        self.state().calls()
    }

    /// Every request to `/` since the simulator started, by action and by injected fault: exact at
    /// any volume, unlike counts taken from the bounded call log.
    pub fn call_counts(&self) -> CallCounts {
        self.state().counts()
    }

    /// Creates a security group (as a console user would; no ActionTrail event), checked like a
    /// seeded one: false if it exists already, an error if it is invalid. `POST /_sim/groups` does
    /// the same.
    pub fn add_group(&self, group: SeedGroup) -> anyhow::Result<bool> {
        self.state().add_group(group)
    }

    /// A group's policy in the default account.
    pub fn policy_of(&self, region: &str, id: &str) -> Option<Policy> {
        self.policy_of_in(DEFAULT_ACCOUNT, region, id)
    }

    pub fn policy_of_in(&self, account: &str, region: &str, id: &str) -> Option<Policy> {
        self.state().group(account, region, id).map(|g| g.policy)
    }

    /// Flips a group of the default account the way a console user would: no token, no log entry,
    /// and no ActionTrail event either (a change only a read can find: a missed event; for one
    /// with an event see [`Simulator::flip_in_console`]). False if unknown.
    pub fn set_policy(&self, region: &str, id: &str, p: Policy) -> bool {
        self.set_policy_in(DEFAULT_ACCOUNT, region, id, p)
    }

    pub fn set_policy_in(&self, account: &str, region: &str, id: &str, p: Policy) -> bool {
        self.state().set_policy(account, region, id, p)
    }

    /// Flips a group of the default account in the console: like [`Simulator::set_policy`], and
    /// ActionTrail records a `ConsoleOperation` event by `actor` (pushed to EventBridge like any
    /// other). Returns the event's `eventId`, `None` if the group is unknown.
    pub fn flip_in_console(
        &self,
        region: &str,
        id: &str,
        p: Policy,
        actor: &ConsoleActor,
    ) -> Option<String> {
        self.flip_in_console_in(DEFAULT_ACCOUNT, region, id, p, actor)
    }

    pub fn flip_in_console_in(
        &self,
        account: &str,
        region: &str,
        id: &str,
        p: Policy,
        actor: &ConsoleActor,
    ) -> Option<String> {
        let (event_id, fresh) = {
            let mut st = self.state();
            if !st.set_policy(account, region, id, p) {
                return None;
            }
            let now = chrono::Utc::now().timestamp();
            let record = trail::console_record(account, region, id, p.as_str(), actor, now);
            let event_id = st.trail.record(account, region, now, record);
            (event_id, st.trail.take_outbox())
        };
        self.publish(fresh);
        Some(event_id)
    }

    /// Every ActionTrail event, oldest first, of every account and region, whether or not the
    /// query delay has passed (the store keeps the latest 20,000).
    pub fn events(&self) -> Vec<Value> {
        self.state()
            .trail
            .events()
            .map(|e| e.record.clone())
            .collect()
    }

    /// The ActionTrail settings (query delay, default region).
    pub fn actiontrail(&self) -> TrailConfig {
        self.state().trail.config.clone()
    }

    /// Replaces the ActionTrail settings; they apply to every later `LookupEvents`.
    pub fn set_actiontrail(&self, cfg: TrailConfig) -> anyhow::Result<()> {
        cfg.validate()?;
        self.state().trail.config = cfg;
        Ok(())
    }

    /// The EventBridge targets (tokens included).
    pub fn eventbridge(&self) -> EventBridgeConfig {
        self.bus().config().clone()
    }

    /// Replaces the EventBridge targets (resetting their loss and duplicate counters); deliveries
    /// under way finish as they started.
    pub fn set_eventbridge(&self, cfg: EventBridgeConfig) -> anyhow::Result<()> {
        cfg.validate()?;
        self.bus().configure(cfg);
        Ok(())
    }

    /// Every delivery attempt and every lost event, oldest first (the latest 10,000).
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.bus().deliveries()
    }

    /// Replaces the fault configuration (an empty config clears it).
    pub fn set_faults(&self, cfg: FaultConfig) {
        self.faults().configure(cfg);
    }

    /// Runs one parsed request through the pipeline; synchronous so the state lock is never held
    /// across an await. `v3` is the request as V3 verification needs it, when it is V3-signed;
    /// `key` identifies it across retries (`chaos::request_key`); `meta` is what ActionTrail
    /// records besides the parameters (Host, User-Agent, peer address).
    fn handle(
        &self,
        method: &str,
        params: &Params,
        v3: Option<&SignedRequest>,
        key: u64,
        meta: &RequestMeta,
    ) -> Answer {
        let request_id = respond::new_request_id();
        // V3 clients send no Format parameter; they ask for JSON with an Accept header.
        let format = match v3 {
            Some(_) => Format::Json,
            None => Format::from_param(params.get("Format").map(String::as_str)),
        };
        let text = |k: &str| params.get(k).cloned().unwrap_or_default();
        let nonempty = |k: &str| params.get(k).filter(|v| !v.is_empty()).cloned();
        let action = text("Action");
        let mut st = self.state();
        // An ActionTrail request's region is its endpoint's (or its RegionId, or the default).
        let region = match Api::of(&action) {
            Some(Api::ActionTrail) => trail::request_region(meta, params, &st.trail.config),
            _ => text("RegionId"),
        };
        let mut rec = CallRecord {
            method: method.to_string(),
            action: action.clone(),
            region: region.clone(),
            group_id: nonempty("SecurityGroupId"),
            client_token: nonempty("ClientToken"),
            access_key_id: match v3 {
                Some(r) => r.credential().unwrap_or_default(),
                None => text("AccessKeyId"),
            },
            request_id: request_id.clone(),
            signature: String::from(if v3.is_some() { "V3" } else { "V1" }),
            ..CallRecord::default()
        };
        let result = authenticate(&mut st, method, params, v3).and_then(|account| {
            rec.account.clone_from(&account);
            self.run(&mut st, &account, params, key, meta, &mut rec)
        });
        let answer = match result {
            Ok(Some(out)) => {
                rec.status = 200;
                rec.effective = out.effective;
                rec.replayed = out.replayed;
                rec.request_id = out.request_id.clone();
                let mut body = out.body;
                if let Value::Object(m) = &mut body {
                    m.insert("RequestId".into(), Value::String(out.request_id));
                }
                Answer::Respond(respond::render(
                    200,
                    format,
                    &format!("{action}Response"),
                    &body,
                ))
            }
            Ok(None) => {
                rec.status = 0;
                Answer::Drop
            }
            Err(e) => {
                rec.status = e.status;
                rec.code = Some(e.code.clone());
                let api = Api::of(&action).unwrap_or(Api::Ecs);
                let body = respond::error_body(&e, &request_id, api, Some(&region));
                let mut resp = respond::render(e.status, format, "Error", &body);
                if let Some(ms) = e.retry_after_ms {
                    resp.headers_mut().insert("x-acs-retry-after", ms.into());
                }
                Answer::Respond(resp)
            }
        };
        st.log(rec);
        let fresh = st.trail.take_outbox();
        drop(st);
        self.publish(fresh);
        answer
    }

    /// The checks after authentication, and the action (under `rec.request_id`, in `rec.region`).
    /// `Ok(None)` means "close the connection without answering".
    fn run(
        &self,
        st: &mut state::State,
        account: &str,
        params: &Params,
        key: u64,
        meta: &RequestMeta,
        rec: &mut CallRecord,
    ) -> Result<Option<handlers::Outcome>, ApiError> {
        let (action, region) = (rec.action.clone(), rec.region.clone());
        let (action, region) = (action.as_str(), region.as_str());
        let (key_id, request_id) = (rec.access_key_id.clone(), rec.request_id.clone());
        let call = Call {
            account,
            action,
            region,
            request_id: &request_id,
            key_id: &key_id,
            meta,
        };
        // Version is checked before Action, as ECS does; an unknown action is judged as ECS's.
        let api = Api::of(action);
        match params.get("Version").map(String::as_str) {
            Some(v) if v == api.unwrap_or(Api::Ecs).version() => {}
            None | Some("") => {
                return Err(ApiError::new(
                    400,
                    "MissingVersion",
                    "Version is mandatory for this action.",
                ))
            }
            Some(_) => {
                return Err(ApiError::new(
                    400,
                    "InvalidVersion",
                    "Specified parameter Version is not valid.",
                ))
            }
        }
        let Some(api) = api else {
            return Err(ApiError::new(
                404,
                "InvalidAction.NotFound",
                "Specified api is not found, please check your url and method.",
            ));
        };
        // A RAM policy is checked once the caller is known, before any quota.
        if st
            .keys
            .get(&key_id)
            .is_some_and(|k| k.denied.iter().any(|a| a == action))
        {
            return Err(api.denied(action));
        }
        // Quotas are per account and region, as ECS's are (ActionTrail's: the endpoint's region).
        let verdict = self.faults().decide_in(
            &format!("{account}/{region}"),
            action,
            key,
            std::time::Instant::now(),
        );
        match verdict {
            Verdict::Pass => execute(st, api, &call, params).map(Some),
            Verdict::ThrottledHint(ms) => {
                rec.fault = Some("throttle".into());
                let mut e = ApiError::new(
                    400,
                    "Throttling.User",
                    "Request was denied due to user flow control.",
                );
                e.retry_after_ms = Some(ms);
                Err(e)
            }
            Verdict::Throttled => {
                rec.fault = Some("throttle".into());
                Err(ApiError::new(
                    400,
                    "Throttling.User",
                    "Request was denied due to user flow control.",
                ))
            }
            Verdict::Fail(f) => {
                rec.fault = Some(if f.drop { "drop" } else { "failNext" }.into());
                if f.apply_first {
                    // Executed for real; its effect is logged even though the client never learns it.
                    if let Ok(out) = execute(st, api, &call, params) {
                        rec.effective = out.effective;
                        rec.replayed = out.replayed;
                    }
                }
                if f.drop {
                    rec.code = Some(f.code);
                    Ok(None)
                } else {
                    Err(ApiError::new(f.status, f.code, f.message))
                }
            }
        }
    }
}

/// One authenticated request, as the action and ActionTrail see it.
struct Call<'a> {
    account: &'a str,
    action: &'a str,
    /// `RegionId` for ECS and STS; the endpoint's region for ActionTrail.
    region: &'a str,
    request_id: &'a str,
    key_id: &'a str,
    meta: &'a RequestMeta,
}

/// The action itself, once every check passed. A write ([`handlers::WRITES`]) that got this far is
/// an ActionTrail event, failed or not (a failed one carries `errorCode` and changed nothing).
fn execute(
    st: &mut state::State,
    api: Api,
    call: &Call,
    params: &Params,
) -> Result<handlers::Outcome, ApiError> {
    let now = chrono::Utc::now().timestamp();
    let result = match api {
        Api::Sts => sts::assume_role(st, params, call.request_id, now),
        Api::Ecs => handlers::dispatch(st, call.account, call.action, params, call.request_id),
        Api::ActionTrail => lookup::lookup_events(
            &st.trail,
            call.account,
            call.region,
            params,
            call.request_id,
            now,
        ),
    };
    if api == Api::Ecs && handlers::WRITES.contains(&call.action) {
        record_write(st, call, params, &result, now);
    }
    result
}

/// Writes the ActionTrail event of an ECS write: the caller's key, identity and account, the
/// RequestId the caller saw, the error when it failed.
fn record_write(
    st: &mut state::State,
    call: &Call,
    params: &Params,
    result: &Result<handlers::Outcome, ApiError>,
    now: i64,
) {
    let identity = st
        .keys
        .get(call.key_id)
        .map(|k| k.identity.clone())
        .unwrap_or_else(|| trail::Identity::root(call.account));
    // A write that names no region (Join/Leave may not) is recorded in its group's.
    let group_region = || {
        let id = params.get("SecurityGroupId")?;
        st.groups
            .keys()
            .find(|(a, _, g)| a == call.account && g == id)
            .map(|(_, r, _)| r.clone())
    };
    let region = match call.region {
        "" => group_region().unwrap_or_else(|| st.trail.config.default_region.clone()),
        r => r.to_string(),
    };
    let (request_id, error) = match result {
        Ok(out) => (out.request_id.as_str(), None),
        Err(e) => (call.request_id, Some((e.code.as_str(), e.message.as_str()))),
    };
    let record = trail::ApiCall {
        action: call.action,
        account: call.account,
        region: &region,
        access_key_id: call.key_id,
        identity: &identity,
        params,
        request_id,
        error,
        meta: call.meta,
        time: now,
    }
    .record();
    st.trail.record(call.account, &region, now, record);
}

/// Who sent the request: the V1 or V3 signature checks, an STS session's expiry, then nonce
/// freshness (which needs the state's nonce store, so it is remembered only for requests whose
/// signature holds). Returns the account of the signing key.
fn authenticate(
    st: &mut state::State,
    method: &str,
    params: &Params,
    v3: Option<&SignedRequest>,
) -> Result<String, ApiError> {
    let now = chrono::Utc::now().timestamp();
    let v = match v3 {
        Some(r) => auth_v3::verify(r, &st.keys, now)?,
        None => auth::verify(method, params, &st.keys, now)?,
    };
    if !st
        .nonces
        .check_and_insert(&v.access_key_id, &v.nonce, v.timestamp, now)
    {
        return Err(ApiError::new(
            400,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        ));
    }
    let Some(key) = st.keys.get(&v.access_key_id) else {
        return Err(ApiError::new(
            404,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        ));
    };
    if key.expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::new(
            400,
            "InvalidSecurityToken.Expired",
            "Specified SecurityToken is expired.",
        ));
    }
    Ok(key.account.clone())
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space), lossy on invalid UTF-8: a mangled
/// value then simply fails the signature check instead of crashing anything. Later names win.
fn parse_form(text: &str, into: &mut Params) {
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        into.insert(dec(k), dec(v));
    }
}

/// The handler for `/`: GET, POST with query, POST with a form body (query and body merged).
async fn rpc(AxState(sim): AxState<Simulator>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let conn = parts
        .extensions
        .get::<ConnectInfo<ConnHandle>>()
        .map(|c| c.0.clone());
    let is_form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            let e = ApiError::new(
                413,
                "RequestEntityTooLarge",
                "The request body is too large.",
            );
            let body = respond::error_body(&e, &respond::new_request_id(), Api::Ecs, None);
            return respond::render(413, Format::Json, "Error", &body);
        }
    };
    let mut params = Params::new();
    parse_form(parts.uri.query().unwrap_or(""), &mut params);
    if is_form {
        parse_form(&String::from_utf8_lossy(&bytes), &mut params);
    }
    let latency = sim.faults().latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    // Computed once: Action and Version (which V3 adds below) are not part of it.
    let key = chaos::request_key(&params);
    let hang = sim.faults().hang(key);
    if let Some(d) = hang {
        return chaos::hang(&sim, &params, d, conn).await;
    }
    // tea-openapi >= 0.4 signs with V3 by default: an `ACS3-` Authorization header and no Signature
    // parameter. Action and Version then come from the (signed) `x-acs-action` / `x-acs-version`.
    let v3 = (!params.contains_key("Signature") && auth_v3::is_v3(&parts.headers)).then(|| {
        SignedRequest::new(
            parts.method.as_str(),
            &parts.uri,
            parts.headers.clone(),
            &bytes,
        )
    });
    if let Some(r) = &v3 {
        for (param, header) in [("Action", "x-acs-action"), ("Version", "x-acs-version")] {
            if let Some(v) = r.header(header) {
                params.insert(param.to_string(), v);
            }
        }
    }
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let meta = RequestMeta {
        host: header("host").or_else(|| parts.uri.authority().map(|a| a.to_string())),
        user_agent: header("user-agent"),
        source_ip: conn
            .as_ref()
            .and_then(|c| c.peer())
            .map(|a| a.ip().to_string()),
    };
    match sim.handle(parts.method.as_str(), &params, v3.as_ref(), key, &meta) {
        Answer::Respond(r) => r,
        Answer::Drop => {
            match conn {
                Some(c) => c.kill(),
                None => tokio::time::sleep(DROP_FALLBACK).await,
            }
            respond::admin_json(503, serde_json::json!({"dropped": true}))
        }
    }
}
