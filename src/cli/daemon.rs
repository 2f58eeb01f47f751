//! Daemon flags (raw, as clap parses them) and their validation into [`DaemonSettings`]. Every problem
//! is collected with the other argument problems, so bad configuration exits 64 before any port is
//! bound or any request is sent.

use super::duration;
use crate::daemon::settings::DaemonSettings;
use clap::Args;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Flags that only mean something without `--once`. Kept as strings so a typo is reported with the
/// other argument problems instead of by clap one at a time.
#[derive(Args, Debug, Default, Clone)]
#[command(next_help_heading = "Daemon (without --once)")]
pub struct DaemonArgs {
    /// Time between full resyncs of every declared group, e.g. 30s, 2m, 1h [default: 5m].
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<String>,
    /// Serve /metrics, /healthz and /readyz on this address, e.g. 127.0.0.1:9090 or :9090 [default: off].
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// After SIGTERM/SIGINT, how long a running pass may finish its in-flight writes [default: 20s].
    #[arg(long, value_name = "DURATION")]
    pub shutdown_grace: Option<String>,
    /// Quiet time after the last file event before a pass starts [default: 300ms].
    #[arg(long, value_name = "DURATION")]
    pub debounce: Option<String>,
    /// Corrections of one group, each within --fight-window of the previous, before sgpolicy holds off.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub fight_threshold: u32,
    /// How close together corrections must be to count as a fight [default: 1h].
    #[arg(long, value_name = "DURATION")]
    pub fight_window: Option<String>,
    /// First hold on a fighting group's corrections; doubles with each further correction, capped
    /// at 24h [default: 5m].
    #[arg(long, value_name = "DURATION")]
    pub fight_hold: Option<String>,
}

/// A `--metrics-addr` that is not `HOST:PORT` or `:PORT`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("--metrics-addr {text:?} is not an address like 127.0.0.1:9090 or :9090")]
pub struct BadListenAddr {
    pub text: String,
}

/// `HOST:PORT` with an IP address or `localhost`, or `:PORT` for every interface.
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, BadListenAddr> {
    let bad = || BadListenAddr {
        text: text.to_string(),
    };
    if let Some(port) = text.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| bad())?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    // Only `localhost` is resolved: anything else would make start-up depend on DNS.
    match text.rsplit_once(':') {
        Some(("localhost", port)) if port.parse::<u16>().is_ok() => (text)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(bad),
        _ => Err(bad()),
    }
}

impl DaemonArgs {
    /// Validates the daemon flags; `once` rejects the daemon-only ones so a forgotten `--once` or a
    /// stray `--interval` is caught instead of silently ignored.
    pub fn validate(&self, once: bool, problems: &mut Vec<String>) -> DaemonSettings {
        let mut s = DaemonSettings::default();
        if once {
            for (flag, given) in [
                ("--interval", self.interval.is_some()),
                ("--metrics-addr", self.metrics_addr.is_some()),
                ("--shutdown-grace", self.shutdown_grace.is_some()),
                ("--debounce", self.debounce.is_some()),
            ] {
                if given {
                    problems.push(format!(
                        "{flag} only applies to the daemon mode (without --once)"
                    ));
                }
            }
            return s;
        }
        let mut duration = |flag: &str, v: &Option<String>, into: &mut Duration| {
            if let Some(text) = v {
                match duration::parse(text) {
                    Ok(d) => *into = d,
                    Err(e) => problems.push(format!("{flag} {e}")),
                }
            }
        };
        duration("--interval", &self.interval, &mut s.interval);
        duration(
            "--shutdown-grace",
            &self.shutdown_grace,
            &mut s.shutdown_grace,
        );
        duration("--debounce", &self.debounce, &mut s.debounce);
        duration("--fight-window", &self.fight_window, &mut s.fight.window);
        duration("--fight-hold", &self.fight_hold, &mut s.fight.hold);
        if s.interval < Duration::from_secs(1) {
            problems.push(format!(
                "--interval must be at least 1s, got {}",
                humantime::format_duration(s.interval)
            ));
        }
        if s.debounce > Duration::from_secs(60) {
            problems.push("--debounce must be at most 60s".to_string());
        }
        if self.fight_threshold == 0 {
            problems.push("--fight-threshold must be at least 1".to_string());
        }
        s.fight.threshold = self.fight_threshold;
        s.fight.hold_cap = s.fight.hold_cap.max(s.fight.hold);
        // A failed pass is retried no later than the regular interval would run it anyway.
        s.retry.cap = s.retry.cap.max(s.interval);
        if let Some(a) = &self.metrics_addr {
            match parse_listen_addr(a) {
                Ok(addr) => s.metrics_addr = Some(addr),
                Err(e) => problems.push(e.to_string()),
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen_addr(":9090").unwrap().to_string(),
            "0.0.0.0:9090"
        );
        assert_eq!(
            parse_listen_addr("127.0.0.1:9").unwrap().to_string(),
            "127.0.0.1:9"
        );
        assert_eq!(parse_listen_addr("[::1]:9").unwrap().to_string(), "[::1]:9");
        assert!(parse_listen_addr("localhost:9090")
            .unwrap()
            .ip()
            .is_loopback());
        for bad in [
            "9090",
            "example.com:80",
            ":http",
            "127.0.0.1",
            "127.0.0.1:99999",
        ] {
            assert!(parse_listen_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn daemon_flags_are_validated_together() {
        let args = DaemonArgs {
            interval: Some("soon".into()),
            metrics_addr: Some("nowhere".into()),
            shutdown_grace: Some("10s".into()),
            fight_threshold: 0,
            ..DaemonArgs::default()
        };
        let mut problems = Vec::new();
        let s = args.validate(false, &mut problems);
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert_eq!(s.shutdown_grace, Duration::from_secs(10));
    }

    #[test]
    fn daemon_only_flags_are_rejected_with_once() {
        let args = DaemonArgs {
            interval: Some("30s".into()),
            fight_threshold: 3,
            ..DaemonArgs::default()
        };
        let mut problems = Vec::new();
        args.validate(true, &mut problems);
        assert_eq!(
            problems,
            ["--interval only applies to the daemon mode (without --once)"]
        );
    }
}
