//! The daemon's validated settings (built by `cli::daemon` from the flags): resync interval, endpoints,
//! shutdown grace, debounce, fights and the retry backoff.

use std::net::SocketAddr;
use std::time::Duration;

/// Defaults, shown in `--help` and documented in docs/daemon.md.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
/// The resync interval when ActionTrail events are on and `--interval` is not given: events find
/// drift in seconds, so the full resync is only the backstop for lost events (docs/events.md has
/// the formula behind the choice).
pub const DEFAULT_INTERVAL_WITH_EVENTS: Duration = Duration::from_secs(3600);
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(300);

/// Validated daemon configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonSettings {
    pub interval: Duration,
    pub metrics_addr: Option<SocketAddr>,
    pub shutdown_grace: Duration,
    pub debounce: Duration,
    pub fight: FightPolicy,
    pub retry: RetryPolicy,
    /// ActionTrail events: the poller and the push receiver.
    pub events: crate::events::EventSettings,
    /// On unless `--no-report-ungoverned`: after each full pass, list every (account, region) the folder names and
    /// export `sgpolicy_ungoverned_groups`.
    pub report_ungoverned: bool,
    /// `--notify-config`: the sinks notifications go to (none: off).
    pub notify: crate::notify::NotifySettings,
    /// `--status-addr`: the status page (loopback only unless `status_auth`: it shows user names).
    pub status_addr: Option<SocketAddr>,
    /// `--status-auth-file`: the users allowed to see it (HTTP basic, bcrypt).
    pub status_auth: Option<std::sync::Arc<crate::daemon::status::auth::Htpasswd>>,
}

/// When corrections of one group count as a fight, and how long to hold off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FightPolicy {
    pub threshold: u32,
    pub window: Duration,
    pub hold: Duration,
    pub hold_cap: Duration,
}

/// Backoff of the automatic retry after a pass that failed on the cloud: `base * 2^(n-1)` after n
/// consecutive failures, capped, with jitter down to half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    /// The nominal delay after `failures` consecutive failed passes (before jitter).
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(20);
        self.base.saturating_mul(1u32 << exp).min(self.cap)
    }
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            interval: DEFAULT_INTERVAL,
            metrics_addr: None,
            status_addr: None,
            status_auth: None,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            debounce: DEFAULT_DEBOUNCE,
            fight: FightPolicy {
                threshold: 3,
                window: Duration::from_secs(3600),
                hold: Duration::from_secs(300),
                hold_cap: Duration::from_secs(24 * 3600),
            },
            retry: RetryPolicy {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(300),
            },
            events: crate::events::EventSettings::default(),
            report_ungoverned: true,
            notify: crate::notify::NotifySettings::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_backoff_doubles_and_is_capped() {
        let r = RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
        };
        let secs: Vec<u64> = (1..=11).map(|n| r.delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(r.delay(u32::MAX), Duration::from_secs(300));
    }
}
