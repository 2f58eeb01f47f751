//! The `LookupEvents` poller: every `every`, for each (account, region) the daemon governs, ask
//! ActionTrail for the `ModifySecurityGroupPolicy` events of the last `lookback` and hand each new
//! one to the daemon as a [`Heard`].
//!
//! - **Overlapping windows.** Every poll asks for the whole window `[now − lookback, now]` (events
//!   become queryable late), follows `NextToken` to the end (at most [`MAX_PAGES`] pages, newest
//!   first, with a warning when there are more), and drops the `eventId`s it has already seen
//!   ([`RecentIds`], at most [`SEEN_CAP`] ids). An event is thus handed over once, however many polls
//!   return it. Records the parser ignores (failed calls, other events, malformed ones) are counted
//!   by reason in [`Status`] and not handed over; sgpolicy's own writes *are* handed over (telling
//!   them apart is the daemon's job).
//! - **Pacing.** Calls go through the account's client, whose limiter paces `LookupEvents` at
//!   ActionTrail's 2 calls a second per account across all its regions; accounts are polled
//!   concurrently, the regions of one account one after the other.
//! - **Degrade, never fail.** A refusal (no `actiontrail:LookupEvents`), throttling beyond the
//!   call's budget, an outage or an unreachable account marks that (account, region) unavailable in
//!   [`Status`] with the reason, logs one warning when its state changes (not every poll), and the
//!   poller carries on: a refused one is asked again only every [`FORBIDDEN_RETRY`], the others at
//!   the next poll. One info line when it recovers. The resync covers whatever is missed.
//! - The first poll comes one `every` after the start (the daemon's start-up pass reads every group
//!   anyway). The poller stops when the sink is closed.

use super::dedup::RecentIds;
use super::record::{parse_record, MODIFY_POLICY_EVENT};
use super::status::{self, Status};
use super::{Heard, Via};
use crate::accounts::Clients;
use crate::ecs::trail::{EventQuery, Filter};
use crate::ecs::EcsError;
use crate::model::{AccountRef, Bucket};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Pages read per (account, region) and poll at most (50 events each).
pub const MAX_PAGES: usize = 20;
/// Event ids remembered; older ones are forgotten first.
pub const SEEN_CAP: usize = 50_000;
/// How often an (account, region) whose `LookupEvents` was refused is asked again (or every poll,
/// if polls are rarer): only a RAM grant changes the answer.
pub const FORBIDDEN_RETRY: Duration = Duration::from_secs(300);
/// What to do about a refusal.
const GRANT: &str = "grant actiontrail:LookupEvents (deploy/ram-policy.json)";
/// ActionTrail answers at most 30 days a query.
const MAX_LOOKBACK: Duration = Duration::from_secs(30 * 86_400);

/// What the daemon governs, published after each pass: the (account, region)s with governed groups
/// and the roles that reach the named accounts (`Desired::accounts`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Targets {
    pub buckets: BTreeSet<Bucket>,
    pub roles: BTreeMap<String, AccountRef>,
    /// The daemon checks isolation: ask for every ECS write (rule, membership and interface
    /// changes too), not only ModifySecurityGroupPolicy.
    pub reach_events: bool,
}

/// Why one (account, region) could not be polled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LookupFailure {
    Forbidden,
    Throttled,
    Error,
}

impl LookupFailure {
    fn label(self) -> &'static str {
        match self {
            LookupFailure::Forbidden => status::LOOKUP_FORBIDDEN,
            LookupFailure::Throttled => status::LOOKUP_THROTTLED,
            LookupFailure::Error => status::LOOKUP_ERROR,
        }
    }
}

#[derive(Clone, Debug)]
struct Problem {
    cause: LookupFailure,
    /// What `/readyz` shows, with what to do about it.
    reason: String,
}

impl Problem {
    fn of(e: &EcsError) -> Problem {
        match e {
            EcsError::Api(api) if api.is_throttling() => Problem {
                cause: LookupFailure::Throttled,
                reason: format!(
                    "LookupEvents still throttled ({}) when its retry budget ran out; ActionTrail allows 2 calls/s per account, shared with every other caller; polling again next time",
                    api.code
                ),
            },
            EcsError::Api(api) if api.is_permission_denied() => Problem {
                cause: LookupFailure::Forbidden,
                reason: format!(
                    "no permission for actiontrail:LookupEvents ({}): {GRANT}",
                    api.code
                ),
            },
            other => Problem {
                cause: LookupFailure::Error,
                reason: format!("LookupEvents failed: {other}"),
            },
        }
    }
}

/// What the poller remembers of one (account, region) between polls.
#[derive(Default)]
struct Track {
    failing: Option<LookupFailure>,
    /// A refused one is not asked again before this.
    not_before: Option<Instant>,
    /// The last poll stopped at [`MAX_PAGES`] with more to read.
    truncated: bool,
}

/// One (account, region)'s records, oldest first, and whether pages were left unread.
struct Read {
    records: Vec<Value>,
    truncated: bool,
}

fn describe(bucket: &Bucket) -> String {
    match bucket.account.as_str() {
        "" => format!("region {}", bucket.region),
        a => format!("account {a} region {}", bucket.region),
    }
}

/// Reads every page (up to [`MAX_PAGES`]) of one (account, region) for `query`.
async fn read_bucket(
    clients: &Clients,
    roles: &BTreeMap<String, AccountRef>,
    bucket: &Bucket,
    query: &EventQuery,
) -> Result<Read, Problem> {
    let client = clients
        .get(&bucket.account, roles.get(bucket.account.as_str()))
        .await
        .map_err(|e| Problem {
            cause: LookupFailure::Error,
            reason: e.to_string(),
        })?;
    let mut records = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = client
            .lookup_events(&bucket.region, query, token.as_deref())
            .await
            .map_err(|e| Problem::of(&e))?;
        records.extend(page.events);
        match page.next_token {
            // A token handed out twice in a row would loop forever: the end.
            Some(t) if token.as_ref() != Some(&t) => token = Some(t),
            _ => {
                records.reverse();
                return Ok(Read {
                    records,
                    truncated: false,
                });
            }
        }
    }
    records.reverse();
    Ok(Read {
        records,
        truncated: true,
    })
}

/// Polls until the sink is closed; see the module documentation.
pub async fn run(
    clients: Arc<Clients>,
    targets: watch::Receiver<Arc<Targets>>,
    every: Duration,
    lookback: Duration,
    sink: mpsc::Sender<Heard>,
    status: Arc<Status>,
) {
    status.turn_on(Via::Pull);
    let every = every.max(Duration::from_millis(1));
    let mut poller = Poller {
        clients,
        lookback: lookback.clamp(Duration::from_secs(1), MAX_LOOKBACK),
        forbidden_retry: FORBIDDEN_RETRY.max(every),
        sink,
        status,
        seen: RecentIds::new(SEEN_CAP),
        tracks: BTreeMap::new(),
    };
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = poller.sink.closed() => return,
        }
        let now = targets.borrow().clone();
        if poller.poll(&now).await.is_err() {
            return;
        }
    }
}

/// The sink was closed: the daemon is stopping.
struct Closed;

struct Poller {
    clients: Arc<Clients>,
    lookback: Duration,
    forbidden_retry: Duration,
    sink: mpsc::Sender<Heard>,
    status: Arc<Status>,
    seen: RecentIds,
    tracks: BTreeMap<Bucket, Track>,
}

impl Poller {
    /// One poll of every target (except refused ones waiting out [`FORBIDDEN_RETRY`]).
    async fn poll(&mut self, targets: &Targets) -> Result<(), Closed> {
        self.tracks.retain(|b, _| targets.buckets.contains(b));
        self.status.retain_buckets(&targets.buckets);
        let end = chrono::Utc::now();
        let back = chrono::Duration::from_std(self.lookback).unwrap_or(chrono::Duration::zero());
        let query = EventQuery {
            start: end - back,
            end,
            filter: if targets.reach_events {
                Filter::EcsWrites
            } else {
                Filter::EventName(MODIFY_POLICY_EVENT.to_string())
            },
        };
        let started = Instant::now();
        let mut by_account: BTreeMap<&str, Vec<&Bucket>> = BTreeMap::new();
        for b in &targets.buckets {
            let waiting = self
                .tracks
                .get(b)
                .and_then(|t| t.not_before)
                .is_some_and(|at| at > started);
            if !waiting {
                by_account.entry(b.account.as_str()).or_default().push(b);
            }
        }
        let (clients, roles, query) = (&self.clients, &targets.roles, &query);
        let per_account = by_account.into_values().map(|buckets| async move {
            let mut out = Vec::with_capacity(buckets.len());
            for b in buckets {
                out.push((b, read_bucket(clients, roles, b, query).await));
            }
            out
        });
        let results = futures::future::join_all(per_account).await;
        for (bucket, result) in results.into_iter().flatten() {
            match result {
                Ok(read) => {
                    self.succeeded(bucket, read.truncated, end);
                    self.deliver(bucket, read.records).await?;
                }
                Err(problem) => self.failed(bucket, problem),
            }
        }
        Ok(())
    }

    /// Hands over each record not seen before; counts the ones the parser ignores.
    async fn deliver(&mut self, bucket: &Bucket, records: Vec<Value>) -> Result<(), Closed> {
        for record in records {
            if let Some(id) = record.get("eventId").and_then(Value::as_str) {
                if !id.is_empty() && !self.seen.first_time(id) {
                    continue;
                }
            }
            match parse_record(&record, Some(&bucket.region)) {
                Ok(change) => {
                    let heard = Heard {
                        change,
                        via: Via::Pull,
                        account: Some(bucket.account.to_string()),
                    };
                    self.sink.send(heard).await.map_err(|_| Closed)?;
                    self.status.record(Via::Pull, status::ACCEPTED);
                }
                Err(why) => {
                    tracing::debug!(where_ = %describe(bucket), "ActionTrail event ignored: {why}");
                    self.status.record(Via::Pull, why.label());
                }
            }
        }
        Ok(())
    }

    fn succeeded(&mut self, bucket: &Bucket, truncated: bool, at: chrono::DateTime<chrono::Utc>) {
        self.status.bucket_ok(bucket, at);
        self.status.lookup(status::LOOKUP_OK);
        let track = self.tracks.entry(bucket.clone()).or_default();
        if track.failing.take().is_some() {
            tracing::info!(
                "ActionTrail events of {} are available again",
                describe(bucket)
            );
        }
        track.not_before = None;
        if truncated && !track.truncated {
            tracing::warn!(
                "ActionTrail has more than {} ModifySecurityGroupPolicy events in the last {}s for {}: only the newest are read; the resync covers the rest",
                MAX_PAGES * 50,
                self.lookback.as_secs(),
                describe(bucket)
            );
        }
        track.truncated = truncated;
    }

    fn failed(&mut self, bucket: &Bucket, problem: Problem) {
        self.status.bucket_failed(bucket, problem.reason.clone());
        self.status.lookup(problem.cause.label());
        let track = self.tracks.entry(bucket.clone()).or_default();
        if track.failing != Some(problem.cause) {
            tracing::warn!(
                "ActionTrail events of {} unavailable: {}; the resync still reads every group",
                describe(bucket),
                problem.reason
            );
        }
        track.failing = Some(problem.cause);
        track.not_before = (problem.cause == LookupFailure::Forbidden)
            .then(|| Instant::now() + self.forbidden_retry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::credentials::Secret;
    use crate::ecs::{ClientConfig, Credentials, EcsClient};
    use crate::model::Policy;
    use sgpolicy_sim::{ConsoleActor, FaultConfig, Seed, Simulator};

    const SEED: &str = "accessKeys:
  - {id: AKID, secret: SECRET}
  - {id: NOTRAIL, secret: SECRET2, deniedActions: [LookupEvents]}
securityGroups:
  - {id: sg-1, region: cn-hangzhou, innerAccessPolicy: Accept}
actionTrail: {queryDelaySeconds: 0}
";

    /// A simulator on loopback and its URL.
    async fn simulator() -> (Simulator, String) {
        let sim = Simulator::new(Seed::from_yaml(SEED).expect("seed"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let server = sim.clone();
        tokio::spawn(async move { server.serve(listener, std::future::pending()).await });
        (sim, url)
    }

    fn client(url: &str, key: &str, secret: &str) -> EcsClient {
        client_with(url, key, secret, ClientConfig::default().throttle_budget)
    }

    fn client_with(url: &str, key: &str, secret: &str, throttle_budget: Duration) -> EcsClient {
        let config = ClientConfig {
            endpoint: Some(url.to_string()),
            actiontrail_endpoint: Some(url.to_string()),
            max_attempts: 1,
            throttle_budget,
            ..ClientConfig::default()
        };
        let creds = Credentials {
            access_key_id: key.into(),
            access_key_secret: Secret::new(secret),
            security_token: None,
        };
        EcsClient::new(config, Arc::new(creds)).expect("client")
    }

    fn hangzhou() -> Targets {
        Targets {
            buckets: BTreeSet::from([Bucket {
                account: "".into(),
                region: "cn-hangzhou".into(),
            }]),
            roles: BTreeMap::new(),
            reach_events: false,
        }
    }

    /// A running poller polling every 20 ms, what it hears, its status, and the handle of its task.
    struct Running {
        heard: mpsc::Receiver<Heard>,
        status: Arc<Status>,
        task: tokio::task::JoinHandle<()>,
        _targets: watch::Sender<Arc<Targets>>,
    }

    fn start(client: EcsClient) -> Running {
        let (tx, heard) = mpsc::channel(64);
        let (targets_tx, targets) = watch::channel(Arc::new(hangzhou()));
        let status = Arc::new(Status::new());
        let task = tokio::spawn(run(
            Arc::new(Clients::single(client)),
            targets,
            Duration::from_millis(20),
            crate::events::DEFAULT_LOOKBACK,
            tx,
            status.clone(),
        ));
        Running {
            heard,
            status,
            task,
            _targets: targets_tx,
        }
    }

    /// Waits (at most 20 s) until `done` holds.
    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..2000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting until {what}");
    }

    fn lookups(status: &Status, outcome: &str) -> u64 {
        status
            .lookups()
            .iter()
            .find(|(o, _)| *o == outcome)
            .map_or(0, |(_, n)| *n)
    }

    fn count(status: &Status, result: &str) -> u64 {
        status
            .counts()
            .iter()
            .find(|((via, r), _)| *via == Via::Pull && *r == result)
            .map_or(0, |(_, n)| *n)
    }

    fn drain(heard: &mut mpsc::Receiver<Heard>) -> Vec<Heard> {
        let mut out = Vec::new();
        while let Ok(h) = heard.try_recv() {
            out.push(h);
        }
        out
    }

    #[tokio::test]
    async fn a_console_flip_is_heard_once_however_many_polls_overlap_it() {
        let (sim, url) = simulator().await;
        let alice = ConsoleActor {
            user_name: Some("alice".into()),
            ..ConsoleActor::default()
        };
        let event_id = sim
            .flip_in_console("cn-hangzhou", "sg-1", sgpolicy_sim::Policy::Drop, &alice)
            .expect("group exists");
        let mut p = start(client(&url, "AKID", "SECRET"));
        until("three polls have read the window", || {
            lookups(&p.status, status::LOOKUP_OK) >= 3
        })
        .await;
        let heard = drain(&mut p.heard);
        assert_eq!(heard.len(), 1, "{heard:#?}");
        let h = &heard[0];
        assert_eq!((h.via, h.account.as_deref()), (Via::Pull, Some("")));
        assert_eq!(
            (h.change.region.as_str(), h.change.group_id.as_deref()),
            ("cn-hangzhou", Some("sg-1"))
        );
        assert_eq!(h.change.author.set_to, Some(Policy::Drop));
        assert_eq!(h.change.author.event_id, event_id);
        assert_eq!(h.change.author.name.as_deref(), Some("alice"));
        assert_eq!(count(&p.status, status::ACCEPTED), 1);
        assert_eq!(p.status.unavailable(), None);
        assert_eq!(p.status.last_polled().len(), 1);
        // Every poll was one signed LookupEvents call the simulator accepted.
        let calls = sim.calls();
        let lookups: Vec<_> = calls
            .iter()
            .filter(|c| c.action == "LookupEvents")
            .collect();
        assert!(lookups.len() >= 3 && lookups.iter().all(|c| c.status == 200));
        // Closing the sink stops the poller.
        drop(p.heard);
        tokio::time::timeout(Duration::from_secs(10), p.task)
            .await
            .expect("the poller stops when its sink is closed")
            .expect("no panic");
    }

    /// What asking for every ECS write costs one poll: 3 policy flips among 100 rule changes in the
    /// window are one page by name, three pages as ECS writes (50 a page), and only the latter
    /// hears the rule changes. At ActionTrail's 2 calls/s per account the client paces them, so the
    /// price is time per poll (pages / 2 s), never the quota.
    #[tokio::test]
    async fn every_ecs_write_costs_one_page_per_fifty_writes_and_hears_the_rule_changes() {
        let (sim, url) = simulator().await;
        for i in 0..100 {
            let rule: sgpolicy_sim::SeedRule = serde_json::from_value(serde_json::json!({
                "Direction": "ingress", "IpProtocol": "TCP", "PortRange": format!("{p}/{p}", p = 1000 + i),
                "SourceCidrIp": "10.0.0.0/8"}))
            .expect("rule");
            sim.add_rule(
                sgpolicy_sim::DEFAULT_ACCOUNT,
                "cn-hangzhou",
                "sg-1",
                &rule,
                Some(&ConsoleActor::default()),
            )
            .expect("added");
        }
        for p in [Policy::Drop, Policy::Accept, Policy::Drop] {
            let p = match p {
                Policy::Drop => sgpolicy_sim::Policy::Drop,
                Policy::Accept => sgpolicy_sim::Policy::Accept,
            };
            sim.flip_in_console("cn-hangzhou", "sg-1", p, &ConsoleActor::default())
                .expect("group exists");
        }
        let clients = Clients::single(client(&url, "AKID", "SECRET"));
        let bucket = hangzhou().buckets.into_iter().next().expect("one bucket");
        let end = chrono::Utc::now() + chrono::Duration::seconds(1);
        let mut cost = Vec::new();
        for filter in [
            Filter::EventName(MODIFY_POLICY_EVENT.to_string()),
            Filter::EcsWrites,
        ] {
            let query = EventQuery {
                start: end - chrono::Duration::minutes(20),
                end,
                filter: filter.clone(),
            };
            let before = sim
                .calls()
                .iter()
                .filter(|c| c.action == "LookupEvents")
                .count();
            let read = read_bucket(&clients, &BTreeMap::new(), &bucket, &query)
                .await
                .unwrap_or_else(|p| panic!("{filter:?}: {}", p.reason));
            let pages = sim
                .calls()
                .iter()
                .filter(|c| c.action == "LookupEvents")
                .count()
                - before;
            let heard = read
                .records
                .iter()
                .filter(|r| crate::events::record::parse_record(r, None).is_ok())
                .count();
            eprintln!(
                "{filter:?}: {pages} LookupEvents call(s), {} records, {heard} usable",
                read.records.len()
            );
            cost.push((pages, read.records.len()));
        }
        assert_eq!(cost, [(1, 3), (3, 103)]);
    }

    #[tokio::test]
    async fn every_page_is_followed_to_the_end() {
        let (sim, url) = simulator().await;
        let mut ids = BTreeSet::new();
        for i in 0..120 {
            let p = [sgpolicy_sim::Policy::Drop, sgpolicy_sim::Policy::Accept][i % 2];
            ids.insert(
                sim.flip_in_console("cn-hangzhou", "sg-1", p, &ConsoleActor::default())
                    .expect("group exists"),
            );
        }
        let mut p = start(client(&url, "AKID", "SECRET"));
        // More than the channel holds: the poller waits for room, so read as they come.
        let mut heard = Vec::new();
        while heard.len() < 120 {
            let h = tokio::time::timeout(Duration::from_secs(20), p.heard.recv())
                .await
                .expect("120 events in time")
                .expect("the poller runs");
            heard.push(h);
        }
        let polls = lookups(&p.status, status::LOOKUP_OK);
        until("two more polls", || {
            lookups(&p.status, status::LOOKUP_OK) >= polls + 2
        })
        .await;
        heard.extend(drain(&mut p.heard));
        let got: BTreeSet<String> = heard
            .iter()
            .map(|h| h.change.author.event_id.clone())
            .collect();
        assert_eq!(heard.len(), 120);
        assert_eq!(got, ids);
        // Three pages of at most 50, in one poll.
        assert!(
            sim.calls()
                .iter()
                .filter(|c| c.action == "LookupEvents")
                .count()
                >= 3
        );
    }

    #[tokio::test]
    async fn own_writes_are_heard_but_failed_calls_are_not() {
        let (_sim, url) = simulator().await;
        let c = client(&url, "AKID", "SECRET");
        let key = crate::model::GroupKey::new("cn-hangzhou", "sg-1");
        c.modify_policy(&key, Policy::Drop, "sgpolicy-test-token")
            .await
            .expect("the write succeeds");
        let missing = crate::model::GroupKey::new("cn-hangzhou", "sg-missing");
        let e = c
            .modify_policy(&missing, Policy::Drop, "sgpolicy-test-2")
            .await
            .expect_err("no such group");
        assert!(e.is_not_found(), "{e}");
        // ECS calls and ActionTrail calls are counted apart.
        assert_eq!(c.stats().total("ModifySecurityGroupPolicy"), 2);
        let mut p = start(c.clone());
        until("two polls", || lookups(&p.status, status::LOOKUP_OK) >= 2).await;
        let heard = drain(&mut p.heard);
        assert_eq!(heard.len(), 1, "{heard:#?}");
        assert_eq!(
            heard[0].change.client_token.as_deref(),
            Some("sgpolicy-test-token")
        );
        assert!(heard[0].change.is_own_write_of(Policy::Drop));
        assert_eq!(count(&p.status, "ignored_failed_call"), 1);
        assert_eq!(c.stats().total("LookupEvents"), 0);
        assert!(c.trail_stats().total("LookupEvents") >= 2);
    }

    #[tokio::test]
    async fn a_refused_lookup_marks_the_pull_unavailable_naming_the_permission() {
        let (sim, url) = simulator().await;
        sim.flip_in_console(
            "cn-hangzhou",
            "sg-1",
            sgpolicy_sim::Policy::Drop,
            &ConsoleActor::default(),
        )
        .expect("group exists");
        let mut p = start(client(&url, "NOTRAIL", "SECRET2"));
        until("a poll was refused", || {
            lookups(&p.status, status::LOOKUP_FORBIDDEN) >= 1
        })
        .await;
        let why = p.status.unavailable().expect("unavailable");
        assert!(
            why.contains("actiontrail:LookupEvents") && why.contains("deploy/ram-policy.json"),
            "{why}"
        );
        assert!(why.starts_with("pull: cn-hangzhou: "), "{why}");
        // Several polls later the refused region has not been asked again (it waits 5 minutes).
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(lookups(&p.status, status::LOOKUP_FORBIDDEN), 1);
        assert!(drain(&mut p.heard).is_empty());
        assert!(!p.task.is_finished(), "a refusal does not stop the poller");
    }

    #[tokio::test]
    async fn an_outage_degrades_the_pull_until_it_ends() {
        let (sim, url) = simulator().await;
        sim.set_faults(FaultConfig {
            server_error_rate: 1.0,
            ..FaultConfig::default()
        });
        let mut p = start(client(&url, "AKID", "SECRET"));
        until("a poll failed", || {
            lookups(&p.status, status::LOOKUP_ERROR) >= 2
        })
        .await;
        let why = p.status.unavailable().expect("unavailable");
        assert!(why.contains("ServiceUnavailable"), "{why}");
        sim.set_faults(FaultConfig::default());
        sim.flip_in_console(
            "cn-hangzhou",
            "sg-1",
            sgpolicy_sim::Policy::Drop,
            &ConsoleActor::default(),
        )
        .expect("group exists");
        until("the events are heard again", || {
            p.status.unavailable().is_none() && count(&p.status, status::ACCEPTED) == 1
        })
        .await;
        assert_eq!(drain(&mut p.heard).len(), 1);
    }

    #[tokio::test]
    async fn throttling_beyond_the_budget_degrades_the_pull_and_it_recovers() {
        let (sim, url) = simulator().await;
        let throttled: FaultConfig = serde_json::from_value(serde_json::json!({
            "throttle": {"LookupEvents": {"perSecond": 0}}
        }))
        .expect("faults");
        sim.set_faults(throttled);
        let c = client_with(&url, "AKID", "SECRET", Duration::from_millis(50));
        let mut p = start(c.clone());
        until("a poll was throttled", || {
            lookups(&p.status, status::LOOKUP_THROTTLED) >= 1
        })
        .await;
        let why = p.status.unavailable().expect("unavailable");
        assert!(why.contains("throttled (Throttling.User)"), "{why}");
        assert!(c.trail_stats().throttled() >= 1);
        assert_eq!(c.stats().throttled(), 0, "ECS figures are untouched");
        sim.set_faults(FaultConfig::default());
        until("a poll succeeded again", || {
            p.status.unavailable().is_none()
        })
        .await;
        assert!(lookups(&p.status, status::LOOKUP_OK) >= 1);
        assert!(drain(&mut p.heard).is_empty());
    }
}
