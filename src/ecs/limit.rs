//! Client-side pacing per (region, action): a rate limiter whose rate adapts to throttling (AIMD), so a
//! pass runs close to the account's API quota without ever flooding it.
//!
//! ECS throttles per account, per region, per action. Each (region, action) pair therefore gets its own
//! bucket with a *ceiling* (`--max-rps`, or a `--max-rps-action` override) and a *current rate*:
//!
//! - **Pacing.** Requests are spaced `1/rate` apart (GCRA with a tolerance of one interval, so a waiter
//!   woken a little late does not lose its slot, and at most one request beyond the rate is ever sent
//!   in any window). Waiters queue first-come first-served; only the head of the queue sleeps.
//! - **Multiplicative decrease.** A `Throttling*` answer halves the current rate (never below 1 request
//!   per second — Alibaba's advice is to probe at 1 QPS after a throttle) and pauses the bucket for the
//!   server's `x-acs-retry-after` hint, or else for one interval at the new rate. Repeated throttles
//!   (a quota spent for the rest of its minute) thus quickly bring the bucket down to 1-QPS probing,
//!   while a single throttle at a window boundary costs little. Only a throttle for a request sent
//!   *after* the previous decrease counts, so a burst of in-flight requests all throttled together
//!   halves the rate once, not once each.
//! - **Additive increase.** Every success raises the rate by a tenth of the ceiling per second elapsed
//!   since the last change, so a halved bucket is back at its ceiling after about five seconds without
//!   throttling.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Default requests per second per (region, action) when the user sets nothing. ECS quotas are set per
/// account in Quota Center and differ by API and account; 20 per second stays far below the usual
/// quotas of the three calls sgpolicy makes, so other tools sharing the account keep their headroom.
pub const DEFAULT_MAX_RPS: f64 = 20.0;

/// The lowest rate a throttled bucket drops to (Alibaba: "probe at 1 QPS after a throttle").
const FLOOR_RPS: f64 = 1.0;
/// Multiplicative decrease factor on a throttle.
const DECREASE: f64 = 0.5;
/// Additive increase: fraction of the ceiling regained per second without throttling.
const INCREASE_PER_SEC: f64 = 0.1;

/// The configured ceilings: a default for every action plus per-action overrides.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimits {
    pub default_rps: f64,
    pub per_action: BTreeMap<String, f64>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            default_rps: DEFAULT_MAX_RPS,
            per_action: BTreeMap::new(),
        }
    }
}

impl RateLimits {
    pub fn ceiling(&self, action: &str) -> f64 {
        self.per_action
            .get(action)
            .copied()
            .unwrap_or(self.default_rps)
    }

    /// Parses one `Action=RPS` override as given to `--max-rps-action`.
    pub fn parse_override(text: &str) -> Result<(String, f64), BadOverride> {
        let bad = |why| BadOverride {
            text: text.to_string(),
            why,
        };
        let (action, rps) = text
            .split_once('=')
            .ok_or_else(|| bad(OverrideProblem::NoEquals))?;
        let action = action.trim();
        if action.is_empty() || !action.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad(OverrideProblem::NotAnAction(action.to_string())));
        }
        let rps = parse_rps(rps.trim()).map_err(|e| bad(OverrideProblem::Rate(e)))?;
        Ok((action.to_string(), rps))
    }
}

/// A text that is not a request rate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a rate: expected a number of requests per second above 0 and at most 10000"
)]
pub struct BadRate {
    pub text: String,
}

/// A `--max-rps-action` value that is not `Action=RPS`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("--max-rps-action {text:?}: {why}")]
pub struct BadOverride {
    pub text: String,
    pub why: OverrideProblem,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OverrideProblem {
    #[error("expected Action=RPS, e.g. ModifySecurityGroupPolicy=5")]
    NoEquals,
    #[error("{0:?} is not an API action name")]
    NotAnAction(String),
    #[error(transparent)]
    Rate(BadRate),
}

/// A positive, finite rate of at most 10,000 requests per second.
pub fn parse_rps(text: &str) -> Result<f64, BadRate> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 10_000.0 => Ok(v),
        _ => Err(BadRate {
            text: text.to_string(),
        }),
    }
}

struct BucketState {
    ceiling: f64,
    rate: f64,
    /// GCRA theoretical arrival time of the next request.
    tat: Instant,
    paused_until: Instant,
    last_change: Instant,
    last_decrease: Option<Instant>,
}

impl BucketState {
    fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.rate)
    }

    /// The earliest instant the next request may go.
    fn next_slot(&self) -> Instant {
        let early = self.tat.checked_sub(self.interval()).unwrap_or(self.tat);
        early.max(self.paused_until)
    }
}

struct Bucket {
    /// First-come first-served queue of waiters; its holder is the only one sleeping for a slot.
    turn: tokio::sync::Mutex<()>,
    state: Mutex<BucketState>,
}

/// All buckets of one client. Cheap to share behind an `Arc`.
pub struct Limiter {
    limits: RateLimits,
    /// By region, then action: looked up with the borrowed names on every request.
    buckets: Mutex<HashMap<String, HashMap<String, Arc<Bucket>>>>,
}

impl Limiter {
    pub fn new(limits: RateLimits) -> Limiter {
        Limiter {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn bucket(&self, region: &str, action: &str) -> Arc<Bucket> {
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = map.get(region).and_then(|actions| actions.get(action)) {
            return bucket.clone();
        }
        let ceiling = self.limits.ceiling(action);
        let now = Instant::now();
        let bucket = Arc::new(Bucket {
            turn: tokio::sync::Mutex::new(()),
            state: Mutex::new(BucketState {
                ceiling,
                rate: ceiling,
                tat: now,
                paused_until: now,
                last_change: now,
                last_decrease: None,
            }),
        });
        map.entry(region.to_string())
            .or_default()
            .insert(action.to_string(), bucket.clone());
        bucket
    }

    /// Waits for this (region, action)'s next slot and takes it; returns the instant it was granted
    /// (pass it back to [`Limiter::throttled`] so stale throttles are recognised).
    pub async fn acquire(&self, region: &str, action: &str) -> Instant {
        let bucket = self.bucket(region, action);
        let _turn = bucket.turn.lock().await;
        loop {
            let slot = lock(&bucket.state).next_slot();
            let now = Instant::now();
            if slot <= now {
                let mut s = lock(&bucket.state);
                // Re-check: a throttle may have paused the bucket since we looked.
                if s.next_slot() <= now {
                    s.tat = s.tat.max(now) + s.interval();
                    return now;
                }
                continue;
            }
            tokio::time::sleep_until(slot).await;
        }
    }

    /// A request granted at `sent_at` was throttled: pause the bucket and (once per burst) halve its rate.
    pub fn throttled(
        &self,
        region: &str,
        action: &str,
        sent_at: Instant,
        retry_after: Option<Duration>,
    ) {
        let bucket = self.bucket(region, action);
        let mut s = lock(&bucket.state);
        let now = Instant::now();
        if s.last_decrease.map_or(true, |d| sent_at > d) {
            let floor = FLOOR_RPS.min(s.ceiling);
            s.rate = (s.rate * DECREASE).max(floor);
            s.last_decrease = Some(now);
            s.last_change = now;
            tracing::debug!(region, action, rate = s.rate, "throttled: rate decreased");
        }
        let pause = retry_after.unwrap_or_else(|| s.interval());
        s.paused_until = s.paused_until.max(now + pause);
    }

    /// A request succeeded: regain rate linearly with time, up to the ceiling.
    pub fn succeeded(&self, region: &str, action: &str) {
        let bucket = self.bucket(region, action);
        let mut s = lock(&bucket.state);
        if s.rate >= s.ceiling {
            return;
        }
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(s.last_change).as_secs_f64();
        s.rate = (s.rate + s.ceiling * INCREASE_PER_SEC * elapsed).min(s.ceiling);
        s.last_change = now;
    }

    /// The current rate of one bucket (its ceiling if it has not been used yet).
    pub fn rate(&self, region: &str, action: &str) -> f64 {
        lock(&self.bucket(region, action).state).rate
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rps: f64) -> Limiter {
        Limiter::new(RateLimits {
            default_rps: rps,
            per_action: BTreeMap::from([("Slow".to_string(), 2.0)]),
        })
    }

    /// Grants `n` slots and returns their offsets from the start, in milliseconds.
    async fn grants(l: &Limiter, region: &str, action: &str, n: usize) -> Vec<u128> {
        let start = Instant::now();
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(
                l.acquire(region, action)
                    .await
                    .duration_since(start)
                    .as_millis(),
            );
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_at_the_ceiling_after_one_early_slot() {
        let l = limiter(10.0);
        // 100 ms apart; the second may come one interval early (the GCRA tolerance), then strict.
        assert_eq!(grants(&l, "r", "A", 5).await, [0, 0, 100, 200, 300]);
    }

    #[tokio::test(start_paused = true)]
    async fn per_action_overrides_and_regions_have_their_own_buckets() {
        let l = limiter(10.0);
        assert_eq!(grants(&l, "r", "Slow", 3).await, [0, 0, 500]);
        // Another region, or another action, is not slowed by the first bucket.
        assert_eq!(grants(&l, "r2", "Slow", 2).await, [0, 0]);
        assert_eq!(grants(&l, "r", "A", 2).await, [0, 0]);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_never_exceed_the_rate() {
        let l = Arc::new(limiter(50.0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move { l.acquire("r", "A").await })
            })
            .collect();
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap().duration_since(start));
        }
        times.sort();
        // In any one-second window at most rate + 1 requests (the single early slot).
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .filter(|u| **u < *t + Duration::from_secs(1))
                .count();
            assert!(in_window <= 51, "{in_window} requests within 1 s of {t:?}");
        }
        assert!(times[99] >= Duration::from_millis(1960), "{:?}", times[99]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_pauses_halves_once_per_burst_and_recovers_gradually() {
        let l = limiter(10.0);
        let sent = l.acquire("r", "A").await;
        let sent2 = l.acquire("r", "A").await;
        l.throttled("r", "A", sent, None);
        l.throttled("r", "A", sent2, None);
        assert_eq!(
            l.rate("r", "A"),
            5.0,
            "two throttles from one burst halve once"
        );
        let start = Instant::now();
        let next = l.acquire("r", "A").await;
        assert!(
            next.duration_since(start) >= Duration::from_millis(200),
            "paused one interval at the new rate (5/s)"
        );
        // A throttle of a request sent after the decrease halves again, down to the floor at most.
        for _ in 0..10 {
            let sent = l.acquire("r", "A").await;
            l.throttled("r", "A", sent, Some(Duration::from_millis(10)));
        }
        assert_eq!(l.rate("r", "A"), 1.0);
        // Additive increase: one tenth of the ceiling per second.
        tokio::time::advance(Duration::from_secs(3)).await;
        l.succeeded("r", "A");
        assert!(
            (l.rate("r", "A") - 4.0).abs() < 0.01,
            "{}",
            l.rate("r", "A")
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        l.succeeded("r", "A");
        assert_eq!(l.rate("r", "A"), 10.0, "never above the ceiling");
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_hint_sets_the_pause() {
        let l = limiter(100.0);
        let sent = l.acquire("r", "A").await;
        l.throttled("r", "A", sent, Some(Duration::from_millis(2500)));
        let start = Instant::now();
        l.acquire("r", "A").await;
        assert!(
            start.elapsed() >= Duration::from_millis(2490),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn overrides_parse_and_reject_nonsense() {
        assert_eq!(
            RateLimits::parse_override("ModifySecurityGroupPolicy=5").unwrap(),
            ("ModifySecurityGroupPolicy".to_string(), 5.0)
        );
        assert_eq!(
            RateLimits::parse_override(" A = 0.5 ").unwrap(),
            ("A".to_string(), 0.5)
        );
        for bad in [
            "A", "=5", "A=0", "A=-1", "A=nan", "A=inf", "A=x", "A b=1", "A=20000",
        ] {
            assert!(RateLimits::parse_override(bad).is_err(), "{bad}");
        }
    }
}
