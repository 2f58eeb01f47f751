//! Injected misbehaviour for tests and demos: latency, scripted failures, lost responses, throttling.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// The body of `POST /_sim/faults`. Posting replaces the whole configuration; `{}` clears it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FaultConfig {
    /// Delay before answering every request to `/`.
    #[serde(default)]
    pub latency_ms: u64,
    /// Scripted failures, each consumed by the next authenticated request whose Action matches.
    #[serde(default)]
    pub fail_next: Vec<ScriptedFailure>,
    /// The next N authenticated requests (any action) are executed for real and then the connection is
    /// closed without an answer: shorthand for `failNext` entries with `applyFirst` and `drop`.
    #[serde(default)]
    pub lose_responses: u32,
    /// Per-action rate limits, counted per region; requests over the rate get 400 `Throttling.User`.
    #[serde(default)]
    pub throttle: BTreeMap<String, ThrottleRule>,
    /// Extra latency per request, uniform in `0..=latencyJitterMs` on top of `latencyMs`.
    #[serde(default)]
    pub latency_jitter_ms: u64,
    /// Fraction of requests answered 503 `ServiceUnavailable` without being executed.
    #[serde(default)]
    pub server_error_rate: f64,
    /// Fraction of requests whose connection is closed without executing them or answering.
    #[serde(default)]
    pub reset_rate: f64,
    /// Fraction of requests executed for real whose response is then lost (connection closed).
    #[serde(default)]
    pub lost_response_rate: f64,
    /// Fraction of requests held without an answer for `hangMs` (default 600 s), then closed.
    #[serde(default)]
    pub hang_rate: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hang_ms: Option<u64>,
}

/// One scripted failure.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScriptedFailure {
    /// Only a request with this Action consumes the entry; absent means any action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default = "default_status")]
    pub status: u16,
    #[serde(default = "default_code")]
    pub code: String,
    #[serde(default = "default_message")]
    pub message: String,
    /// Execute the request for real (state changed, token stored) and only then fail it: "applied,
    /// but the response was lost".
    #[serde(default)]
    pub apply_first: bool,
    /// Close the connection without any HTTP response instead of answering with the error.
    #[serde(default)]
    pub drop: bool,
}

fn default_status() -> u16 {
    503
}
fn default_code() -> String {
    String::from("ServiceUnavailable")
}
fn default_message() -> String {
    String::from("The request has failed due to a temporary failure of the server.")
}

/// A rate limit for one action.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ThrottleRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u32>,
    /// Send `x-acs-retry-after` (milliseconds until the window ends) with each throttled answer.
    #[serde(default)]
    pub retry_after: bool,
}

/// What the fault layer decided for one request.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Answer normally.
    Pass,
    /// Answer 400 `Throttling.User` without executing.
    Throttled,
    /// Like `Throttled`, with an `x-acs-retry-after` header of this many milliseconds.
    ThrottledHint(u64),
    /// Apply the scripted failure (which may say "execute first" and/or "drop").
    Fail(ScriptedFailure),
}

/// The live fault state: the configuration plus what has been consumed and counted so far.
#[derive(Default)]
pub struct Faults {
    latency_ms: u64,
    queue: VecDeque<ScriptedFailure>,
    lose: u32,
    throttle: BTreeMap<String, ThrottleRule>,
    chaos: super::chaos::Chaos,
    cfg: FaultConfig,
}

impl Faults {
    /// Replaces everything, forgetting counters and unconsumed failures.
    pub fn configure(&mut self, cfg: FaultConfig) {
        *self = Faults {
            latency_ms: cfg.latency_ms,
            queue: cfg.fail_next.clone().into(),
            lose: cfg.lose_responses,
            throttle: cfg.throttle.clone(),
            chaos: super::chaos::Chaos::new(&cfg),
            cfg,
        };
    }

    /// The configuration as it stands now (what is left of the queues).
    pub fn current(&self) -> FaultConfig {
        FaultConfig {
            latency_ms: self.latency_ms,
            fail_next: self.queue.iter().cloned().collect(),
            lose_responses: self.lose,
            throttle: self.throttle.clone(),
            ..self.cfg.clone()
        }
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms) + self.chaos.jitter()
    }

    /// Whether the next request hangs, and for how long.
    pub fn hang(&mut self, key: u64) -> Option<Duration> {
        self.chaos.hang(key)
    }

    /// Decides the fate of an authenticated request for `action`. Throttling is checked first, as a
    /// gateway would, and a throttled request consumes no scripted failure.
    #[cfg(test)]
    pub fn decide(&mut self, action: &str, now: Instant) -> Verdict {
        self.decide_in("", action, 0, now)
    }

    /// [`Faults::decide`] for a request to `region`: quotas are per region, as ECS's are. `key`
    /// identifies the logical request across retries (see [`super::chaos::request_key`]).
    pub fn decide_in(&mut self, region: &str, action: &str, key: u64, now: Instant) -> Verdict {
        if let Some(rule) = self.throttle.get(action) {
            if let Some(ms) = self.chaos.throttle(region, action, rule, now) {
                return match rule.retry_after {
                    true => Verdict::ThrottledHint(ms),
                    false => Verdict::Throttled,
                };
            }
        }
        let pos = self.queue.iter().position(|f| match &f.action {
            None => true,
            Some(a) => a == action,
        });
        if let Some(f) = pos.and_then(|i| self.queue.remove(i)) {
            return Verdict::Fail(f);
        }
        if self.lose > 0 {
            self.lose -= 1;
            return Verdict::Fail(ScriptedFailure {
                action: None,
                status: 503,
                code: String::from("ConnectionDropped"),
                message: String::from("response lost"),
                apply_first: true,
                drop: true,
            });
        }
        self.chaos.failure(key).unwrap_or(Verdict::Pass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> FaultConfig {
        serde_json::from_str(json).expect("valid fault config")
    }

    #[test]
    fn scripted_failures_match_their_action_in_order() {
        let mut f = Faults::default();
        f.configure(cfg(r#"{"failNext":[{"action":"ModifySecurityGroupPolicy","code":"InternalError","status":500},{"code":"X"}]}"#));
        let now = Instant::now();
        match f.decide("DescribeSecurityGroups", now) {
            Verdict::Fail(x) => assert_eq!(x.code, "X"),
            v => panic!("{v:?}"),
        }
        match f.decide("ModifySecurityGroupPolicy", now) {
            Verdict::Fail(x) => assert_eq!((x.status, x.code.as_str()), (500, "InternalError")),
            v => panic!("{v:?}"),
        }
        assert_eq!(f.decide("ModifySecurityGroupPolicy", now), Verdict::Pass);
    }

    #[test]
    fn throttle_allows_the_rate_then_refuses_until_the_next_second() {
        let mut f = Faults::default();
        f.configure(cfg(
            r#"{"throttle":{"ModifySecurityGroupPolicy":{"perSecond":2}}}"#,
        ));
        let t = Instant::now();
        assert_eq!(f.decide("ModifySecurityGroupPolicy", t), Verdict::Pass);
        assert_eq!(f.decide("ModifySecurityGroupPolicy", t), Verdict::Pass);
        assert_eq!(f.decide("ModifySecurityGroupPolicy", t), Verdict::Throttled);
        assert_eq!(f.decide("DescribeSecurityGroups", t), Verdict::Pass);
        assert_eq!(
            f.decide("ModifySecurityGroupPolicy", t + Duration::from_secs(1)),
            Verdict::Pass
        );
    }

    #[test]
    fn empty_object_clears_and_unknown_fields_are_rejected() {
        let mut f = Faults::default();
        f.configure(cfg(r#"{"latencyMs":5,"loseResponses":1}"#));
        f.configure(cfg("{}"));
        assert_eq!(f.current(), FaultConfig::default());
        assert!(serde_json::from_str::<FaultConfig>(r#"{"latency":5}"#).is_err());
    }
}
