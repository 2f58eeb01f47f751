//! The daemon's Prometheus metrics (the `prometheus-client` crate, OpenMetrics text format). Names and
//! meanings are listed in docs/daemon.md; keep the two in step.

use crate::ecs::client::CallStats;
use crate::model::Account;
use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PassLabels {
    pub trigger: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TriggerLabels {
    pub trigger: String,
}

/// `account="<id>"` for a group of an account a policy file names, and no label at all for the
/// credential chain's own account, so a single-account setup exports exactly what it always did
/// (and PromQL treats the two alike: an absent label equals an empty one).
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
pub struct AccountLabel(pub String);

impl EncodeLabelSet for AccountLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        match Account::of(&self.0) {
            Account::Own => Ok(()),
            Account::Named(account) => [("account", account)].as_slice().encode(encoder),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
    #[prometheus(flatten)]
    pub account: AccountLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
    #[prometheus(flatten)]
    pub account: AccountLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub action: String,
    pub code: String,
    #[prometheus(flatten)]
    pub account: AccountLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RevisionLabels {
    pub revision: String,
    pub commit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CredentialLabels {
    /// The credential chain's link, e.g. `oidc_role_arn` or `cli_profile/ram_role_arn/static_ak`.
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    pub region: String,
    pub group: String,
    #[prometheus(flatten)]
    pub account: AccountLabel,
}

/// `region` (and `account` for a named account) of `sgpolicy_ungoverned_groups`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CoverageLabels {
    pub region: String,
    #[prometheus(flatten)]
    pub account: AccountLabel,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn duration_histogram() -> Histogram {
    // 10 ms .. ~11 min
    Histogram::new(exponential_buckets(0.01, 2.0, 17))
}

/// Every metric the daemon exports, registered once at start-up.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabels {
    pub cause: String,
    pub actor_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub source: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IsolationLabels {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
}

/// Calls by (account, action, code) as of the last sync.
type CallsSeen = BTreeMap<(String, String, String), u64>;

pub struct Metrics {
    registry: Registry,
    pub passes: Family<PassLabels, Counter>,
    pub pass_duration: Family<TriggerLabels, Histogram, fn() -> Histogram>,
    pub groups: Family<StateLabels, Gauge>,
    /// Groups declared `Drop` by their last isolation verdict.
    pub isolation_groups: Family<IsolationLabels, Gauge>,
    pub writes: Family<OutcomeLabels, Counter>,
    pub api_calls: Family<ApiLabels, Counter>,
    pub last_success: FloatGauge,
    pub revision: Family<RevisionLabels, Gauge>,
    pub load_errors: Gauge,
    pub load_failures: Counter,
    pub consecutive_failures: Gauge,
    pub next_pass: FloatGauge,
    pub fighting_groups: Gauge,
    pub fight_hold: Family<GroupLabels, FloatGauge>,
    pub corrections: Counter,
    pub corrections_by_cause: Family<CauseLabels, Counter>,
    pub oldest_verification_age: FloatGauge,
    pub events: Family<EventLabels, Counter>,
    pub events_available: Family<SourceLabels, Gauge>,
    events_seen: Mutex<BTreeMap<(crate::events::Via, &'static str), u64>>,
    pub ready: Gauge,
    pub credentials_expiry: Family<CredentialLabels, FloatGauge>,
    pub credentials_refresh_failures: Family<CredentialLabels, Gauge>,
    /// Attempts repeated after transient errors, and throttled answers (see docs/scale.md).
    pub api_retries: Counter,
    pub api_throttled: Counter,
    /// `sgpolicy_shard_*` (`daemon::shard`).
    pub shard: crate::daemon::shard::ShardMetrics,
    /// `sgpolicy_notifications_total{sink,result}`, counted by the notifier's sinks.
    pub notify: crate::notify::NotifyMetrics,
    /// `--report-ungoverned`: groups no declaration governs, per (account, region).
    pub ungoverned: Family<CoverageLabels, Gauge>,
    /// The client's counts already added to `api_calls`.
    api_seen: Mutex<CallsSeen>,
    trail_seen: Mutex<CallsSeen>,
    trail_retries_seen: Mutex<(u64, u64)>,
    /// The client's retry and throttle counts already added.
    retries_seen: Mutex<(u64, u64)>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            passes: Family::default(),
            pass_duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            groups: Family::default(),
            isolation_groups: Family::default(),
            writes: Family::default(),
            api_calls: Family::default(),
            last_success: FloatGauge::default(),
            revision: Family::default(),
            load_errors: Gauge::default(),
            load_failures: Counter::default(),
            consecutive_failures: Gauge::default(),
            next_pass: FloatGauge::default(),
            fighting_groups: Gauge::default(),
            fight_hold: Family::default(),
            corrections: Counter::default(),
            corrections_by_cause: Family::default(),
            oldest_verification_age: FloatGauge::default(),
            events: Family::default(),
            events_available: Family::default(),
            events_seen: Mutex::new(BTreeMap::new()),
            ready: Gauge::default(),
            credentials_expiry: Family::default(),
            credentials_refresh_failures: Family::default(),
            api_retries: Counter::default(),
            api_throttled: Counter::default(),
            shard: Default::default(),
            notify: Default::default(),
            ungoverned: Family::default(),
            api_seen: Mutex::new(BTreeMap::new()),
            trail_seen: Mutex::new(BTreeMap::new()),
            trail_retries_seen: Mutex::new((0, 0)),
            retries_seen: Mutex::new((0, 0)),
            registry: Registry::default(),
        };
        let r = &mut registry;
        m.register_passes(r);
        m.register_api(r);
        m.register_folder(r);
        m.register_corrections(r);
        m.register_events_and_health(r);
        m.shard.register(r);
        m.notify.register(r);
        Metrics { registry, ..m }
    }

    /// Passes, their duration, the groups' states and the writes.
    fn register_passes(&self, r: &mut Registry) {
        r.register(
            "sgpolicy_passes",
            "Reconcile passes by trigger and outcome",
            self.passes.clone(),
        );
        r.register(
            "sgpolicy_pass_duration_seconds",
            "Duration of reconcile passes",
            self.pass_duration.clone(),
        );
        r.register(
            "sgpolicy_groups",
            "Declared groups by state after the last pass that read them (in_sync, drifted, unmanageable, error)",
            self.groups.clone(),
        );
        r.register(
            "sgpolicy_isolation_groups",
            "Groups declared Drop by their last isolation verdict (isolated, not-isolated, unknown)",
            self.isolation_groups.clone(),
        );
        r.register(
            "sgpolicy_writes",
            "ModifySecurityGroupPolicy writes by outcome (changed, failed)",
            self.writes.clone(),
        );
    }

    /// ECS calls, their retries and throttling, the last successful pass.
    fn register_api(&self, r: &mut Registry) {
        r.register(
            "sgpolicy_api_calls",
            "ECS API requests by action and result code (OK for success)",
            self.api_calls.clone(),
        );
        r.register(
            "sgpolicy_api_retries",
            "ECS API attempts repeated after a transient error (throttling not included)",
            self.api_retries.clone(),
        );
        r.register(
            "sgpolicy_api_throttled",
            "ECS API answers that were throttled (retried after the rate limiter slowed down)",
            self.api_throttled.clone(),
        );
        r.register(
            "sgpolicy_last_successful_pass_timestamp_seconds",
            "Unix time of the end of the last pass without cloud or folder errors",
            self.last_success.clone(),
        );
    }

    /// The policy folder and the schedule of automatic passes.
    fn register_folder(&self, r: &mut Registry) {
        r.register(
            "sgpolicy_policy_revision_info",
            "The policy revision in force (content digest) and its Git commit when known",
            self.revision.clone(),
        );
        r.register(
            "sgpolicy_policy_load_errors",
            "Errors in the policy folder at its last load (0 when it loaded cleanly)",
            self.load_errors.clone(),
        );
        r.register(
            "sgpolicy_policy_load_failures",
            "Loads of the policy folder that failed (the last good state stayed in force)",
            self.load_failures.clone(),
        );
        r.register(
            "sgpolicy_consecutive_failed_passes",
            "Passes in a row that failed on the cloud; the retry backs off with this",
            self.consecutive_failures.clone(),
        );
        r.register(
            "sgpolicy_next_automatic_pass_seconds",
            "Delay until the next interval pass or retry, as scheduled when the last pass ended",
            self.next_pass.clone(),
        );
    }

    /// Corrections, fights and how long ago each group was verified.
    fn register_corrections(&self, r: &mut Registry) {
        r.register(
            "sgpolicy_fighting_groups",
            "Groups that something else keeps changing back; their corrections are held back",
            self.fighting_groups.clone(),
        );
        r.register(
            "sgpolicy_fight_hold_seconds",
            "Per fighting group: how long its next correction is held back",
            self.fight_hold.clone(),
        );
        r.register(
            "sgpolicy_corrections",
            "Groups changed back to their declaration",
            self.corrections.clone(),
        );
        r.register(
            "sgpolicy_corrections_by_cause",
            "Groups changed back to their declaration, by what found the drift (event, resync, file) and the type of who made it (ram-user, assumed-role, root-account, system, unknown)",
            self.corrections_by_cause.clone(),
        );
        r.register(
            "sgpolicy_oldest_verification_age_seconds",
            "Seconds since the governed group read longest ago was last read successfully (never read: since start)",
            self.oldest_verification_age.clone(),
        );
    }

    /// Events, readiness, credentials and coverage.
    fn register_events_and_health(&self, r: &mut Registry) {
        r.register(
            "sgpolicy_events",
            "ActionTrail events heard, by source (pull, push) and result (targeted, duplicate, ignored_*, rejected_*)",
            self.events.clone(),
        );
        r.register(
            "sgpolicy_events_available",
            "1 while an event source works, 0 while it is unavailable (permission, outage); absent when off",
            self.events_available.clone(),
        );
        r.register(
            "sgpolicy_ready",
            "1 when /readyz answers 200",
            self.ready.clone(),
        );
        r.register(
            "sgpolicy_credentials_expiry_timestamp_seconds",
            "When the temporary credentials in use expire (unix seconds); absent for long-lived keys",
            self.credentials_expiry.clone(),
        );
        r.register(
            "sgpolicy_credentials_refresh_failures",
            "Consecutive failed refreshes of the temporary credentials (0 after a success)",
            self.credentials_refresh_failures.clone(),
        );
        r.register(
            "sgpolicy_ungoverned_groups",
            "Security groups that no policy file governs, per account and region, after the last full pass (--report-ungoverned)",
            self.ungoverned.clone(),
        );
    }

    /// Ungoverned groups by (account, region); (account, region)s not given are dropped.
    pub fn set_ungoverned(&self, counts: &BTreeMap<(String, String), i64>) {
        self.ungoverned.clear();
        for ((account, region), n) in counts {
            self.ungoverned
                .get_or_create(&CoverageLabels {
                    region: region.clone(),
                    account: AccountLabel(account.clone()),
                })
                .set(*n);
        }
    }

    /// Adds the ECS clients' calls made since the last sync (counters only go up).
    pub fn sync_api_calls(&self, stats: &CallStats) {
        self.sync_calls(stats, &self.api_seen, &self.retries_seen);
    }

    /// The same for the ActionTrail calls, which are counted apart (so a pass's own figures never
    /// include a poll that ran beside it) but exported in the same `sgpolicy_api_calls_total`.
    pub fn sync_trail_calls(&self, stats: &CallStats) {
        self.sync_calls(stats, &self.trail_seen, &self.trail_retries_seen);
    }

    fn sync_calls(
        &self,
        stats: &CallStats,
        calls_seen: &Mutex<CallsSeen>,
        retries: &Mutex<(u64, u64)>,
    ) {
        if let Ok(mut seen) = retries.lock() {
            let (r, t) = (stats.retries(), stats.throttled());
            self.api_retries.inc_by(r.saturating_sub(seen.0));
            self.api_throttled.inc_by(t.saturating_sub(seen.1));
            *seen = (r, t);
        }
        let now = stats.snapshot_by_account();
        let Ok(mut seen) = calls_seen.lock() else {
            return;
        };
        for (key, n) in &now {
            let before = seen.get(key).copied().unwrap_or(0);
            if *n > before {
                let (account, action, code) = key.clone();
                self.api_calls
                    .get_or_create(&ApiLabels {
                        action,
                        code,
                        account: AccountLabel(account),
                    })
                    .inc_by(n - before);
            }
        }
        *seen = now;
    }

    pub fn correction(&self, cause: &str, actor_type: &str) {
        self.corrections_by_cause
            .get_or_create(&CauseLabels {
                cause: cause.to_string(),
                actor_type: actor_type.to_string(),
            })
            .inc();
    }

    /// Adds the events heard since the last sync, and the sources' availability.
    pub fn sync_events(&self, status: &crate::events::Status) {
        if let Ok(mut seen) = self.events_seen.lock() {
            for (key, n) in status.counts() {
                // Handed over is a stage, not an outcome: the intake counts what became of it.
                if key.1 == crate::events::status::ACCEPTED {
                    continue;
                }
                let before = seen.get(&key).copied().unwrap_or(0);
                if n > before {
                    self.events
                        .get_or_create(&EventLabels {
                            source: key.0.label().to_string(),
                            result: key.1.to_string(),
                        })
                        .inc_by(n - before);
                }
                seen.insert(key, n);
            }
        }
        for via in [crate::events::Via::Pull, crate::events::Via::Push] {
            let up = match status.availability(via) {
                crate::events::status::Availability::Off => continue,
                crate::events::status::Availability::Ok => 1,
                crate::events::status::Availability::Unavailable(_) => 0,
            };
            self.events_available
                .get_or_create(&SourceLabels {
                    source: via.label().to_string(),
                })
                .set(up);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!("encoding metrics: {e}");
        }
        out
    }

    pub fn pass_done(&self, trigger: &str, outcome: &str, seconds: f64) {
        self.passes
            .get_or_create(&PassLabels {
                trigger: trigger.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.pass_duration
            .get_or_create(&TriggerLabels {
                trigger: trigger.to_string(),
            })
            .observe(seconds);
    }

    /// Refresh health of temporary credentials (see `credentials::refresh::RefreshStatus`).
    pub fn set_credentials(&self, status: &crate::credentials::refresh::RefreshStatus) {
        let labels = CredentialLabels {
            provider: status.provider.clone(),
        };
        self.credentials_expiry
            .get_or_create(&labels)
            .set(status.expiration_unix as f64);
        self.credentials_refresh_failures
            .get_or_create(&labels)
            .set(i64::try_from(status.consecutive_failures).unwrap_or(i64::MAX));
    }

    pub fn set_revision(&self, revision: &str, commit: Option<&str>) {
        self.revision.clear();
        self.revision
            .get_or_create(&RevisionLabels {
                revision: revision.to_string(),
                commit: commit.unwrap_or("").to_string(),
            })
            .set(1);
    }

    /// Checked groups by isolation status (every status is set, zeros included).
    pub fn set_isolation_groups(&self, counts: &BTreeMap<&'static str, i64>) {
        for (status, n) in counts {
            self.isolation_groups
                .get_or_create(&IsolationLabels {
                    status: status.to_string(),
                })
                .set(*n);
        }
    }

    /// Groups by (account, state). Every state of every account is set, zeros included, so a
    /// group that leaves a state takes its count down with it; the chain's own account always appears.
    pub fn set_groups(&self, counts: &BTreeMap<(String, &'static str), i64>) {
        let mut accounts: Vec<&str> = counts.keys().map(|(a, _)| a.as_str()).collect();
        accounts.push("");
        accounts.sort_unstable();
        accounts.dedup();
        for account in accounts {
            for state in ["in_sync", "drifted", "unmanageable", "error"] {
                self.groups
                    .get_or_create(&StateLabels {
                        state: state.to_string(),
                        account: AccountLabel(account.to_string()),
                    })
                    .set(
                        counts
                            .get(&(account.to_string(), state))
                            .copied()
                            .unwrap_or(0),
                    );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_and_throttle_counters_are_exported() {
        let m = Metrics::new();
        m.sync_api_calls(&CallStats::default());
        let text = m.encode();
        assert!(text.contains("sgpolicy_api_retries_total 0"), "{text}");
        assert!(text.contains("sgpolicy_api_throttled_total 0"), "{text}");
    }

    #[test]
    fn exposition_has_the_documented_names() {
        let m = Metrics::new();
        m.pass_done("startup", "success", 0.2);
        m.set_revision("abc123", Some("deadbeef"));
        m.set_groups(&BTreeMap::from([
            ((String::new(), "in_sync"), 3),
            (("2222222222222222".to_string(), "drifted"), 2),
        ]));
        m.writes
            .get_or_create(&OutcomeLabels {
                outcome: "changed".into(),
                account: AccountLabel::default(),
            })
            .inc();
        let text = m.encode();
        for needle in [
            "sgpolicy_passes_total{trigger=\"startup\",outcome=\"success\"} 1",
            "sgpolicy_pass_duration_seconds_count{trigger=\"startup\"} 1",
            "sgpolicy_groups{state=\"in_sync\"} 3",
            "sgpolicy_groups{state=\"drifted\"} 0",
            "sgpolicy_writes_total{outcome=\"changed\"} 1",
            "sgpolicy_groups{state=\"drifted\",account=\"2222222222222222\"} 2",
            "sgpolicy_groups{state=\"in_sync\",account=\"2222222222222222\"} 0",
            "sgpolicy_policy_revision_info{revision=\"abc123\",commit=\"deadbeef\"} 1",
            "sgpolicy_policy_load_errors 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        m.set_revision("def456", None);
        let text = m.encode();
        assert!(!text.contains("abc123"), "the old revision is gone");
        m.set_ungoverned(&BTreeMap::from([
            ((String::new(), "cn-hangzhou".to_string()), 14),
            (
                ("2222222222222222".to_string(), "cn-hangzhou".to_string()),
                0,
            ),
        ]));
        let text = m.encode();
        for needle in [
            "sgpolicy_ungoverned_groups{region=\"cn-hangzhou\"} 14",
            "sgpolicy_ungoverned_groups{region=\"cn-hangzhou\",account=\"2222222222222222\"} 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
