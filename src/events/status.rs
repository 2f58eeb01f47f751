//! How the event sources are doing, shared between the poller, the receiver and the daemon (which
//! exports it: `/readyz`'s "degraded: events unavailable: …" and the event metrics). Thread-safe,
//! cheap, and free of any metrics crate: it only counts.
//!
//! - **Availability** per source: `Off` (not started), `Ok`, or `Unavailable(reason)`. The pull side
//!   is unavailable while any (account, region) it polls is failing; the reason names the first one
//!   and how many others fail too.
//! - **Received events** by (source, result): the poller's and receiver's own results (`accepted`,
//!   `duplicate`, the [`crate::events::Ignored`] labels) and the daemon's classification of accepted
//!   ones (`targeted`, `ignored_ungoverned`, `ignored_own_write`), through [`Status::record`].
//! - **Lookups** by outcome ([`LOOKUP_OK`], [`LOOKUP_FORBIDDEN`], [`LOOKUP_THROTTLED`],
//!   [`LOOKUP_ERROR`]): one per (account, region) poll, not per page.
//! - The time of the last successful poll of each (account, region).

use super::Via;
use crate::model::Bucket;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

/// A poll of one (account, region) read every page it asked for.
pub const LOOKUP_OK: &str = "ok";
/// `LookupEvents` was refused: the caller lacks `actiontrail:LookupEvents`.
pub const LOOKUP_FORBIDDEN: &str = "forbidden";
/// Still throttled when the call's throttling budget ran out.
pub const LOOKUP_THROTTLED: &str = "throttled";
/// Anything else: an outage, a transport failure, an account that cannot be reached.
pub const LOOKUP_ERROR: &str = "error";

/// Result label of an event handed to the daemon.
pub const ACCEPTED: &str = "accepted";
/// Result label of a push whose (`source`, `id`) was already handled.
pub const DUPLICATE: &str = "duplicate";
/// Push requests refused before any envelope was read: no or a wrong token (401), a body over the
/// bound (413), a body that could not be read (400), not JSON (400).
pub const REJECTED_UNAUTHORIZED: &str = "rejected_unauthorized";
pub const REJECTED_TOO_LARGE: &str = "rejected_too_large";
pub const REJECTED_UNREADABLE: &str = "rejected_unreadable";
pub const REJECTED_NOT_JSON: &str = "rejected_not_json";

/// Whether a source is delivering events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Not started (switched off, or not yet running).
    Off,
    Ok,
    /// Why events from it may be missing; the resync still covers every group.
    Unavailable(String),
}

#[derive(Default)]
struct BucketState {
    last_ok: Option<chrono::DateTime<chrono::Utc>>,
    problem: Option<String>,
}

#[derive(Default)]
struct Inner {
    pull_on: bool,
    push: Option<Option<String>>,
    buckets: BTreeMap<Bucket, BucketState>,
    received: BTreeMap<(&'static str, &'static str), (Via, u64)>,
    lookups: BTreeMap<&'static str, u64>,
}

/// Shared as an `Arc<Status>`.
#[derive(Default)]
pub struct Status {
    inner: Mutex<Inner>,
}

fn describe(bucket: &Bucket) -> String {
    match bucket.account.as_str() {
        "" => bucket.region.to_string(),
        a => format!("{a}/{}", bucket.region),
    }
}

impl Status {
    pub fn new() -> Status {
        Status::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The source is running (the poller's first act; the receiver's router when it is built).
    pub fn turn_on(&self, via: Via) {
        let mut g = self.lock();
        match via {
            Via::Pull => g.pull_on = true,
            Via::Push => {
                if g.push.is_none() {
                    g.push = Some(None);
                }
            }
        }
    }

    /// Marks the push receiver unavailable (`Some(reason)`) or available again (`None`); the
    /// daemon may use it when it cannot bind `--events-addr`.
    pub fn set_push(&self, problem: Option<String>) {
        self.lock().push = Some(problem);
    }

    /// One (account, region) was polled to the end at `at`.
    pub fn bucket_ok(&self, bucket: &Bucket, at: chrono::DateTime<chrono::Utc>) {
        let mut g = self.lock();
        let b = g.buckets.entry(bucket.clone()).or_default();
        b.last_ok = Some(at);
        b.problem = None;
    }

    /// One (account, region) could not be polled, for `reason`.
    pub fn bucket_failed(&self, bucket: &Bucket, reason: String) {
        self.lock()
            .buckets
            .entry(bucket.clone())
            .or_default()
            .problem = Some(reason);
    }

    /// Forgets the (account, region)s no longer polled (their groups are no longer governed).
    pub fn retain_buckets(&self, keep: &BTreeSet<Bucket>) {
        self.lock().buckets.retain(|b, _| keep.contains(b));
    }

    pub fn availability(&self, via: Via) -> Availability {
        let g = self.lock();
        match via {
            Via::Pull if !g.pull_on => Availability::Off,
            Via::Pull => {
                let failing: Vec<_> = g
                    .buckets
                    .iter()
                    .filter_map(|(b, s)| s.problem.as_ref().map(|p| (b, p)))
                    .collect();
                match failing.split_first() {
                    None => Availability::Ok,
                    Some(((b, why), rest)) => {
                        let mut reason = format!("{}: {why}", describe(b));
                        if !rest.is_empty() {
                            reason.push_str(&format!(" (and {} more)", rest.len()));
                        }
                        Availability::Unavailable(reason)
                    }
                }
            }
            Via::Push => match &g.push {
                None => Availability::Off,
                Some(None) => Availability::Ok,
                Some(Some(why)) => Availability::Unavailable(why.clone()),
            },
        }
    }

    /// Why some events may be missing, as `/readyz` shows it after "degraded: events unavailable: ";
    /// `None` when every source that is on works.
    pub fn unavailable(&self) -> Option<String> {
        let reasons: Vec<String> = [Via::Pull, Via::Push]
            .into_iter()
            .filter_map(|via| match self.availability(via) {
                Availability::Unavailable(why) => Some(format!("{}: {why}", via.label())),
                _ => None,
            })
            .collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// Counts one received event by its result (a bounded label).
    pub fn record(&self, via: Via, result: &'static str) {
        self.lock()
            .received
            .entry((via.label(), result))
            .or_insert((via, 0))
            .1 += 1;
    }

    /// Received events by (source, result), pull before push, results in alphabetical order.
    pub fn counts(&self) -> Vec<((Via, &'static str), u64)> {
        let g = self.lock();
        let mut out: Vec<_> = g
            .received
            .iter()
            .map(|((_, result), (via, n))| ((*via, *result), *n))
            .collect();
        out.sort_by_key(|((via, result), _)| (*via != Via::Pull, *result));
        out
    }

    /// Counts one poll of one (account, region) by outcome (`LOOKUP_*`).
    pub fn lookup(&self, outcome: &'static str) {
        *self.lock().lookups.entry(outcome).or_default() += 1;
    }

    /// Polls by outcome.
    pub fn lookups(&self) -> Vec<(&'static str, u64)> {
        self.lock().lookups.iter().map(|(k, n)| (*k, *n)).collect()
    }

    /// When each polled (account, region) was last polled to the end.
    pub fn last_polled(&self) -> Vec<(Bucket, chrono::DateTime<chrono::Utc>)> {
        self.lock()
            .buckets
            .iter()
            .filter_map(|(b, s)| s.last_ok.map(|t| (b.clone(), t)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(account: &str, region: &str) -> Bucket {
        Bucket {
            account: account.into(),
            region: region.into(),
        }
    }

    #[test]
    fn a_source_is_off_until_turned_on_and_unavailable_while_any_bucket_fails() {
        let s = Status::new();
        assert_eq!(s.availability(Via::Pull), Availability::Off);
        assert_eq!(s.unavailable(), None);
        s.turn_on(Via::Pull);
        assert_eq!(s.availability(Via::Pull), Availability::Ok);
        let (a, b) = (bucket("", "cn-hangzhou"), bucket("2222", "cn-beijing"));
        s.bucket_failed(&a, "no permission".into());
        s.bucket_failed(&b, "outage".into());
        assert_eq!(
            s.unavailable().as_deref(),
            Some("pull: cn-hangzhou: no permission (and 1 more)")
        );
        s.bucket_ok(&a, chrono::Utc::now());
        assert_eq!(
            s.unavailable().as_deref(),
            Some("pull: 2222/cn-beijing: outage")
        );
        // A bucket no longer polled no longer degrades anything.
        s.retain_buckets(&BTreeSet::from([a.clone()]));
        assert_eq!(s.unavailable(), None);
        assert_eq!(s.last_polled().len(), 1);
        s.turn_on(Via::Push);
        s.set_push(Some("cannot bind".into()));
        assert_eq!(s.unavailable().as_deref(), Some("push: cannot bind"));
    }

    #[test]
    fn received_events_and_lookups_are_counted_by_label() {
        let s = Status::new();
        s.record(Via::Push, DUPLICATE);
        s.record(Via::Push, ACCEPTED);
        s.record(Via::Pull, ACCEPTED);
        s.record(Via::Push, ACCEPTED);
        assert_eq!(
            s.counts(),
            vec![
                ((Via::Pull, ACCEPTED), 1),
                ((Via::Push, ACCEPTED), 2),
                ((Via::Push, DUPLICATE), 1)
            ]
        );
        s.lookup(LOOKUP_OK);
        s.lookup(LOOKUP_FORBIDDEN);
        s.lookup(LOOKUP_OK);
        assert_eq!(s.lookups(), vec![(LOOKUP_FORBIDDEN, 1), (LOOKUP_OK, 2)]);
    }
}
