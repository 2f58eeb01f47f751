//! Fault modes at a configured *fraction* of requests (5xx answers, connection resets, hung requests,
//! applied-but-lost responses) and throttling windows per region, action and second or minute.
//!
//! Fractions are spread evenly and deterministically rather than drawn at random: each mode keeps an
//! accumulator that grows by its rate on every authenticated request and fires when it reaches one. A
//! rate of 0.25 therefore hits exactly every fourth request.
//!
//! Evenly spread over *all* requests is not enough under concurrency: a client's retries interleave
//! with other calls and can land on the firing slot every time, so one unlucky call could exhaust its
//! attempts at any rate. The retry of a request that a rate-based fault hit (same parameters apart from
//! signature, nonce and timestamp) is therefore always let through, without ticking. No logical request
//! is hit twice in a row, and a test can demand that every group converges without being flaky.

use super::conn::ConnHandle;
use super::faults::{FaultConfig, ScriptedFailure, ThrottleRule, Verdict};
use super::{CallRecord, Params, Simulator};
use axum::response::Response;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

/// How long a hung request is held when `hangMs` is not set: longer than any sane client timeout.
const DEFAULT_HANG: Duration = Duration::from_secs(600);

/// One fault mode's deterministic accumulator (also EventBridge's loss and duplicate fractions).
#[derive(Default, Clone, Copy)]
pub(crate) struct Spread {
    rate: f64,
    acc: f64,
}

impl Spread {
    pub(crate) fn new(rate: f64) -> Spread {
        Spread {
            rate: if rate.is_finite() {
                rate.clamp(0.0, 1.0)
            } else {
                0.0
            },
            acc: 0.0,
        }
    }

    pub(crate) fn tick(&mut self) -> bool {
        if self.rate <= 0.0 {
            return false;
        }
        self.acc += self.rate;
        if self.acc >= 1.0 - 1e-9 {
            self.acc -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The live state of the rate-based modes and throttling windows.
#[derive(Default)]
pub struct Chaos {
    server_error: Spread,
    reset: Spread,
    lost: Spread,
    hang: Spread,
    hang_for: Duration,
    jitter_ms: u64,
    /// (region, action, window length in seconds) → (window start, requests admitted).
    windows: HashMap<(String, String, u64), (Instant, u32)>,
    /// Requests (by [`request_key`]) whose last attempt a rate-based fault hit: their retry is spared.
    hit: HashSet<u64>,
}

/// Parameters that change on every attempt of the same logical request and so do not identify it.
const VOLATILE: [&str; 5] = [
    "Signature",
    "SignatureNonce",
    "Timestamp",
    "Action",
    "Version",
];

/// Identifies a logical request across its retries. Action and Version are left out because a V3
/// request only gains them from its headers after the hang check; the other parameters still tell a
/// read from a write of the same group.
pub fn request_key(params: &Params) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (k, v) in params {
        if !VOLATILE.contains(&k.as_str()) {
            (k, v).hash(&mut h);
        }
    }
    h.finish()
}

impl Chaos {
    pub fn new(cfg: &FaultConfig) -> Chaos {
        Chaos {
            server_error: Spread::new(cfg.server_error_rate),
            reset: Spread::new(cfg.reset_rate),
            lost: Spread::new(cfg.lost_response_rate),
            hang: Spread::new(cfg.hang_rate),
            hang_for: cfg.hang_ms.map_or(DEFAULT_HANG, Duration::from_millis),
            jitter_ms: cfg.latency_jitter_ms,
            windows: HashMap::new(),
            hit: HashSet::new(),
        }
    }

    /// Extra latency for one request, uniform in `0..=latencyJitterMs`.
    pub fn jitter(&self) -> Duration {
        match self.jitter_ms {
            0 => Duration::ZERO,
            j => Duration::from_millis(fastrand::u64(0..=j)),
        }
    }

    /// Whether this request hangs (checked for every request to `/`, before anything else). A spared
    /// retry stays marked until [`Chaos::failure`] sees it, so it escapes both checks.
    pub fn hang(&mut self, key: u64) -> Option<Duration> {
        if self.hit.contains(&key) || !self.hang.tick() {
            return None;
        }
        self.hit.insert(key);
        Some(self.hang_for)
    }

    /// Fixed windows per (region, action): `perSecond` and `perMinute` both apply when both are set.
    /// A window opens at the first request after the previous one ended, like a quota that "recovers
    /// the next minute". Returns the milliseconds until the exhausted window ends when throttled.
    pub fn throttle(
        &mut self,
        region: &str,
        action: &str,
        rule: &ThrottleRule,
        now: Instant,
    ) -> Option<u64> {
        let limits = [(1u64, rule.per_second), (60u64, rule.per_minute)];
        for (secs, limit) in limits {
            let Some(limit) = limit else { continue };
            let len = Duration::from_secs(secs);
            let w = self
                .windows
                .entry((region.to_string(), action.to_string(), secs))
                .or_insert((now, 0));
            if now.duration_since(w.0) >= len {
                *w = (now, 0);
            }
            if w.1 >= limit {
                let left = len.saturating_sub(now.duration_since(w.0));
                return Some(left.as_millis() as u64 + 1);
            }
        }
        // Admitted: count it in every window (only now, so a refusal by one window costs nothing).
        for (secs, limit) in limits {
            if limit.is_some() {
                if let Some(w) =
                    self.windows
                        .get_mut(&(region.to_string(), action.to_string(), secs))
                {
                    w.1 += 1;
                }
            }
        }
        None
    }

    /// The rate-based failure for an authenticated request that was not throttled, if one is due.
    pub fn failure(&mut self, key: u64) -> Option<Verdict> {
        if self.hit.remove(&key) {
            return None;
        }
        let verdict = self.rate_failure();
        if verdict.is_some() {
            self.hit.insert(key);
        }
        verdict
    }

    fn rate_failure(&mut self) -> Option<Verdict> {
        let fail = |status: u16, code: &str, message: &str, apply_first: bool, drop: bool| {
            Verdict::Fail(ScriptedFailure {
                action: None,
                status,
                code: code.to_string(),
                message: message.to_string(),
                apply_first,
                drop,
            })
        };
        // Tick every accumulator so each mode keeps its own fraction even when another fires.
        let (e, r, l) = (
            self.server_error.tick(),
            self.reset.tick(),
            self.lost.tick(),
        );
        if l {
            Some(fail(
                503,
                "ConnectionDropped",
                "applied, then the response was lost",
                true,
                true,
            ))
        } else if r {
            Some(fail(
                503,
                "ConnectionReset",
                "connection reset before processing",
                false,
                true,
            ))
        } else if e {
            Some(fail(
                503,
                "ServiceUnavailable",
                "The request has failed due to a temporary failure of the server.",
                false,
                false,
            ))
        } else {
            None
        }
    }
}

/// Holds a hung request, logs it, then closes the connection without an answer.
pub async fn hang(
    sim: &Simulator,
    params: &Params,
    d: Duration,
    conn: Option<ConnHandle>,
) -> Response {
    let text = |k: &str| params.get(k).cloned().unwrap_or_default();
    sim.state().log(CallRecord {
        method: "POST".into(),
        action: text("Action"),
        region: text("RegionId"),
        group_id: params
            .get("SecurityGroupId")
            .filter(|v| !v.is_empty())
            .cloned(),
        client_token: params.get("ClientToken").filter(|v| !v.is_empty()).cloned(),
        access_key_id: text("AccessKeyId"),
        fault: Some("hang".into()),
        ..CallRecord::default()
    });
    tokio::time::sleep(d).await;
    if let Some(c) = conn {
        c.kill();
    }
    super::respond::admin_json(503, serde_json::json!({"hung": true}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chaos(json: &str) -> Chaos {
        Chaos::new(&serde_json::from_str(json).expect("valid fault config"))
    }

    #[test]
    fn fractions_are_exact_and_evenly_spread() {
        let mut c = chaos(r#"{"serverErrorRate":0.25}"#);
        let hits: Vec<bool> = (0..12).map(|i| c.failure(i).is_some()).collect();
        assert_eq!(hits.iter().filter(|h| **h).count(), 3);
        assert!(
            hits.windows(2).all(|w| !(w[0] && w[1])),
            "never two in a row: {hits:?}"
        );
        let mut none = chaos("{}");
        assert!((0..100).all(|i| none.failure(i).is_none() && none.hang(i).is_none()));
    }

    #[test]
    fn the_retry_of_a_hit_request_is_spared_by_every_mode() {
        let mut c = chaos(r#"{"resetRate":1.0,"hangRate":1.0}"#);
        assert!(c.hang(7).is_some(), "first attempt hangs");
        assert!(c.hang(7).is_none(), "its retry does not hang");
        assert!(c.failure(7).is_none(), "nor is it reset");
        assert!(
            c.hang(7).is_some(),
            "the spare is used up: a third attempt is fair game"
        );
        assert!(c.failure(8).is_some(), "another request is still hit");
        assert!(c.failure(8).is_none(), "and its retry spared");
    }

    #[test]
    fn request_keys_ignore_what_changes_between_attempts() {
        let p = |nonce: &str, group: &str| -> Params {
            [
                ("Action", "DescribeSecurityGroupAttribute"),
                ("SignatureNonce", nonce),
                ("Signature", nonce),
                ("Timestamp", nonce),
                ("SecurityGroupId", group),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
        };
        assert_eq!(request_key(&p("a", "sg-1")), request_key(&p("b", "sg-1")));
        assert_ne!(request_key(&p("a", "sg-1")), request_key(&p("a", "sg-2")));
    }

    #[test]
    fn lost_responses_are_applied_and_resets_are_not() {
        let mut c = chaos(r#"{"lostResponseRate":1.0}"#);
        match c.failure(1) {
            Some(Verdict::Fail(f)) => assert!(f.apply_first && f.drop),
            v => panic!("{v:?}"),
        }
        let mut c = chaos(r#"{"resetRate":1.0}"#);
        match c.failure(1) {
            Some(Verdict::Fail(f)) => assert!(!f.apply_first && f.drop),
            v => panic!("{v:?}"),
        }
        let mut c = chaos(r#"{"hangRate":0.5,"hangMs":20}"#);
        assert_eq!(c.hang(1), None);
        assert_eq!(c.hang(2), Some(Duration::from_millis(20)));
    }

    #[test]
    fn throttling_is_per_region_and_action_with_second_and_minute_windows() {
        let mut c = chaos("{}");
        let rule: ThrottleRule =
            serde_json::from_str(r#"{"perSecond":2,"perMinute":3}"#).expect("rule");
        let t = Instant::now();
        assert_eq!(c.throttle("r1", "A", &rule, t), None);
        assert_eq!(c.throttle("r1", "A", &rule, t), None);
        assert!(c.throttle("r1", "A", &rule, t).is_some_and(|ms| ms <= 1001));
        assert_eq!(
            c.throttle("r2", "A", &rule, t),
            None,
            "another region has its own quota"
        );
        assert_eq!(
            c.throttle("r1", "B", &rule, t),
            None,
            "another action has its own quota"
        );
        let later = t + Duration::from_secs(1);
        assert_eq!(c.throttle("r1", "A", &rule, later), None, "a new second");
        let ms = c
            .throttle("r1", "A", &rule, later)
            .expect("minute quota spent");
        assert!(ms > 58_000 && ms <= 59_001, "{ms}");
        assert_eq!(
            c.throttle("r1", "A", &rule, t + Duration::from_secs(60)),
            None
        );
    }
}
