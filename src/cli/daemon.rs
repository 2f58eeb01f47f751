//! Daemon flags (raw, as clap parses them) and their validation into [`DaemonSettings`]. Every problem
//! is collected with the other argument problems, so bad configuration exits 64 before any port is
//! bound or any request is sent.

use super::duration;
use crate::daemon::settings::DaemonSettings;
use crate::ecs::credentials::Secret;
use crate::events::{self, EventSettings, ReceiverSettings};
use clap::Args;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
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
    /// Poll ActionTrail LookupEvents for ModifySecurityGroupPolicy events of every (account, region)
    /// with declared groups this often; 0 switches polling off [default: 30s, at least 10s].
    #[arg(long, value_name = "DURATION")]
    pub events_poll: Option<String>,
    /// Serve POST /events for EventBridge HTTP targets on this address, e.g. :8081 [default: off].
    #[arg(long, value_name = "ADDR")]
    pub events_addr: Option<String>,
    /// File holding the bearer token EventBridge sends (required with --events-addr).
    #[arg(long, value_name = "FILE")]
    pub events_token_file: Option<std::path::PathBuf>,
    /// Send notifications (corrections, holds, fights, isolation, event sources, failing passes) to
    /// the sinks this YAML file lists (docs/notifications.md) [default: none].
    #[arg(long, value_name = "FILE")]
    pub notify_config: Option<std::path::PathBuf>,
    /// Serve the read-only status page (/status, /status.json) on this address, e.g.
    /// 127.0.0.1:8082 (reach it with `kubectl port-forward`); any other than loopback needs
    /// --status-auth-file (docs/status.md) [default: off].
    #[arg(long, value_name = "ADDR")]
    pub status_addr: Option<String>,
    /// htpasswd file of the users allowed to see the status page (`htpasswd -B`: bcrypt lines
    /// user:$2y$…); every request then needs HTTP basic authentication.
    #[arg(long, value_name = "FILE")]
    pub status_auth_file: Option<PathBuf>,
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

/// `--status-addr`: a loopback address, or any with `authenticated`. The page names the people who
/// changed groups (personal data), so a wider bind without `--status-auth-file` is refused rather
/// than exposed.
fn status_addr(text: &str, authenticated: bool) -> Result<SocketAddr, String> {
    let addr = parse_listen_addr(text)
        .map_err(|_| format!("--status-addr {text:?} is not an address like 127.0.0.1:8082"))?;
    if !addr.ip().is_loopback() && !authenticated {
        return Err(format!(
            "--status-addr {text} is not a loopback address and there is no --status-auth-file: the \
             status page shows who changed each group (personal data); bind it to 127.0.0.1 and \
             reach it with kubectl port-forward, or give --status-auth-file (docs/status.md)"
        ));
    }
    Ok(addr)
}

/// `--status-auth-file`: read and parsed, every problem at file:line.
fn status_auth(path: &Path) -> Result<crate::daemon::status::auth::Htpasswd, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "--status-auth-file {}: {e}; create it with `htpasswd -cB FILE USER`",
            path.display()
        )
    })?;
    crate::daemon::status::auth::Htpasswd::parse(&path.display().to_string(), &text)
        .map_err(|e| format!("--status-auth-file {e}"))
}

impl DaemonArgs {
    /// Validates the daemon flags; `once` rejects the daemon-only ones so a forgotten `--once` or a
    /// stray `--interval` is caught instead of silently ignored.
    pub fn validate(&self, once: bool, problems: &mut Vec<String>) -> DaemonSettings {
        let mut s = DaemonSettings::default();
        if once {
            self.reject_daemon_only_flags(problems);
            return s;
        }
        // With events on, the resync is the backstop for lost events: a longer default.
        s.events = self.events(problems);
        if s.events.enabled() {
            s.interval = crate::daemon::settings::DEFAULT_INTERVAL_WITH_EVENTS;
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
        if let Some(path) = &self.notify_config {
            match super::notify::load(path) {
                Ok(n) => s.notify = n,
                Err(errs) => problems.extend(errs),
            }
        }
        if let Some(a) = &self.metrics_addr {
            match parse_listen_addr(a) {
                Ok(addr) => s.metrics_addr = Some(addr),
                Err(e) => problems.push(e.to_string()),
            }
        }
        self.status(&mut s, problems);
        s
    }

    /// `--status-addr` and `--status-auth-file`.
    fn status(&self, s: &mut DaemonSettings, problems: &mut Vec<String>) {
        if let Some(path) = &self.status_auth_file {
            if self.status_addr.is_none() {
                problems.push("--status-auth-file only applies with --status-addr".to_string());
            }
            match status_auth(path) {
                Ok(file) => s.status_auth = Some(std::sync::Arc::new(file)),
                Err(e) => problems.push(e),
            }
        }
        if let Some(a) = &self.status_addr {
            match status_addr(a, self.status_auth_file.is_some()) {
                Ok(addr) => s.status_addr = Some(addr),
                Err(e) => problems.push(e),
            }
        }
    }

    /// Each daemon-only flag given to a `--once` run is a problem.
    fn reject_daemon_only_flags(&self, problems: &mut Vec<String>) {
        for (flag, given) in [
            ("--interval", self.interval.is_some()),
            ("--metrics-addr", self.metrics_addr.is_some()),
            ("--shutdown-grace", self.shutdown_grace.is_some()),
            ("--debounce", self.debounce.is_some()),
            ("--events-poll", self.events_poll.is_some()),
            ("--events-addr", self.events_addr.is_some()),
            ("--events-token-file", self.events_token_file.is_some()),
            ("--notify-config", self.notify_config.is_some()),
            ("--status-addr", self.status_addr.is_some()),
            ("--status-auth-file", self.status_auth_file.is_some()),
        ] {
            if given {
                problems.push(format!(
                    "{flag} only applies to the daemon mode (without --once)"
                ));
            }
        }
    }

    /// `--events-poll`, `--events-addr` and the token its file holds.
    fn events(&self, problems: &mut Vec<String>) -> EventSettings {
        let mut e = EventSettings::default();
        if let Some(text) = &self.events_poll {
            match duration::parse(text) {
                Ok(d) if d.is_zero() => e.poll = None,
                Ok(d) if d < events::MIN_POLL => problems.push(format!(
                    "--events-poll must be 0 (off) or at least {}: ActionTrail asks callers not to poll \
                     LookupEvents often; got {}",
                    humantime::format_duration(events::MIN_POLL),
                    humantime::format_duration(d)
                )),
                Ok(d) => e.poll = Some(d),
                Err(err) => problems.push(format!("--events-poll {err}")),
            }
        }
        let addr = self
            .events_addr
            .as_deref()
            .map(|a| (a, parse_listen_addr(a)));
        let token = match (&addr, &self.events_token_file) {
            (Some(_), None) => {
                problems.push(
                    "--events-addr needs --events-token-file FILE: the receiver only accepts pushes \
                     that carry its bearer token"
                        .to_string(),
                );
                None
            }
            (None, Some(_)) => {
                problems.push("--events-token-file only applies with --events-addr".to_string());
                None
            }
            (Some(_), Some(path)) => match read_token(path) {
                Ok(t) => Some(t),
                Err(why) => {
                    problems.push(why.to_string());
                    None
                }
            },
            (None, None) => None,
        };
        match addr {
            Some((a, Err(_))) => problems.push(format!(
                "--events-addr {a:?} is not an address like 127.0.0.1:8081 or :8081"
            )),
            Some((_, Ok(addr))) => {
                if let Some(token) = token {
                    e.receiver = Some(ReceiverSettings { addr, token });
                }
            }
            None => {}
        }
        e
    }
}

/// Why `--events-token-file` gives no token. Each is a configuration error (exit 64 before any port
/// is bound); the words say what to put in the file, and never show its content.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("--events-token-file {}: {source}; create it with the token the EventBridge target sends", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--events-token-file {}: not UTF-8 text", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("--events-token-file {} is empty; put the bearer token the EventBridge target sends in it", path.display())]
    Empty { path: PathBuf },
    #[error("--events-token-file {}: the token is {len} bytes; it must be at least {} bytes so it cannot \
             be guessed (generate one with `head -c 32 /dev/urandom | base64`)", path.display(), events::MIN_TOKEN_BYTES)]
    TooShort { path: PathBuf, len: usize },
    #[error("--events-token-file {}: the token must be one line of at most 4096 printable characters", path.display())]
    NotOneLine { path: PathBuf },
}

/// The bearer token in `path`, surrounding whitespace trimmed; a missing, unreadable or empty file
/// is a configuration error.
fn read_token(path: &Path) -> Result<Secret, TokenFileError> {
    let path_buf = || path.to_path_buf();
    let text = std::fs::read(path).map_err(|source| TokenFileError::Unreadable {
        path: path_buf(),
        source,
    })?;
    let text = String::from_utf8(text).map_err(|_| TokenFileError::NotUtf8 { path: path_buf() })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenFileError::Empty { path: path_buf() });
    }
    if token.len() < events::MIN_TOKEN_BYTES {
        return Err(TokenFileError::TooShort {
            path: path_buf(),
            len: token.len(),
        });
    }
    if token.len() > 4096 || token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(TokenFileError::NotOneLine { path: path_buf() });
    }
    Ok(Secret::new(token))
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

    #[test]
    fn events_flags_choose_the_poll_the_receiver_and_the_backstop_interval() {
        let validate = |args: DaemonArgs| {
            let mut problems = Vec::new();
            let s = args.validate(false, &mut problems);
            (s, problems)
        };
        let base = DaemonArgs {
            fight_threshold: 3,
            ..DaemonArgs::default()
        };
        // Polling is on by default, so the resync is the backstop with its longer interval.
        let (s, problems) = validate(base.clone());
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.events.poll, Some(events::DEFAULT_POLL));
        assert_eq!(
            s.interval,
            crate::daemon::settings::DEFAULT_INTERVAL_WITH_EVENTS
        );
        // The retry's cap follows the interval in force, as with an explicit --interval.
        assert_eq!(
            s.retry.cap,
            crate::daemon::settings::DEFAULT_INTERVAL_WITH_EVENTS
        );
        // Events off: today's interval; an explicit --interval always wins.
        let (s, _) = validate(DaemonArgs {
            events_poll: Some("0".into()),
            ..base.clone()
        });
        assert_eq!(
            (s.events.poll, s.interval),
            (None, crate::daemon::settings::DEFAULT_INTERVAL)
        );
        let (s, _) = validate(DaemonArgs {
            interval: Some("10m".into()),
            ..base.clone()
        });
        assert_eq!(s.interval, Duration::from_secs(600));
        let (_, problems) = validate(DaemonArgs {
            events_poll: Some("5s".into()),
            ..base.clone()
        });
        assert!(problems[0].contains("at least 10s"), "{problems:?}");
        let (_, problems) = validate(DaemonArgs {
            events_addr: Some(":8081".into()),
            ..base.clone()
        });
        assert!(problems[0].contains("--events-token-file"), "{problems:?}");
    }

    fn status_flags(addr: &str, auth: Option<&Path>) -> (DaemonSettings, Vec<String>) {
        let mut problems = Vec::new();
        let s = DaemonArgs {
            status_addr: Some(addr.into()),
            status_auth_file: auth.map(Path::to_path_buf),
            fight_threshold: 3,
            ..DaemonArgs::default()
        }
        .validate(false, &mut problems);
        (s, problems)
    }

    #[test]
    fn the_status_page_binds_loopback_without_auth_and_a_wider_address_without_it_is_refused_naming_why(
    ) {
        let (s, problems) = status_flags("127.0.0.1:8082", None);
        assert_eq!(
            (s.status_addr.map(|a| a.port()), problems.len()),
            (Some(8082), 0)
        );
        for wide in [":8082", "0.0.0.0:8082", "10.0.0.5:8082"] {
            let (s, problems) = status_flags(wide, None);
            assert_eq!(s.status_addr, None, "{wide}");
            assert!(
                problems[0].contains("not a loopback address")
                    && problems[0].contains("--status-auth-file")
                    && problems[0].contains("personal data"),
                "{wide}: {problems:?}"
            );
        }
        let (_, problems) = status_flags("nowhere", None);
        assert!(problems[0].contains("--status-addr"), "{problems:?}");
    }

    #[test]
    fn a_wider_status_address_binds_with_an_auth_file_and_a_bad_file_is_refused_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("users");
        std::fs::write(
            &good,
            "alice:$2y$05$pZg9b.aP/gynner98lGl3ubOtsbRkQ3PvpFqwkMtnXh4OpV5O0gzq\n",
        )
        .unwrap();
        let (s, problems) = status_flags(":8082", Some(&good));
        assert_eq!(problems, Vec::<String>::new());
        assert_eq!(s.status_addr.map(|a| a.port()), Some(8082));
        assert_eq!(
            s.status_auth.expect("users").users().collect::<Vec<_>>(),
            ["alice"]
        );

        let bad = dir.path().join("bad");
        std::fs::write(&bad, "# users\nalice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n").unwrap();
        let (s, problems) = status_flags(":8082", Some(&bad));
        assert_eq!(s.status_auth, None);
        assert!(
            problems[0].starts_with(&format!("--status-auth-file {}:2: expected", bad.display())),
            "{problems:?}"
        );
        let missing = dir.path().join("missing");
        let (_, problems) = status_flags("127.0.0.1:8082", Some(&missing));
        assert!(problems[0].contains("htpasswd -cB"), "{problems:?}");
    }

    #[test]
    fn the_token_file_is_read_trimmed_and_an_empty_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("token");
        std::fs::write(&good, "abc123-0123456789abcdef\n").unwrap();
        assert_eq!(
            read_token(&good).unwrap().expose(),
            "abc123-0123456789abcdef"
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, " \n").unwrap();
        assert!(matches!(
            read_token(&empty),
            Err(TokenFileError::Empty { .. })
        ));
        let missing = read_token(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(missing, TokenFileError::Unreadable { .. }));
        assert!(
            missing.to_string().contains("create it with the token"),
            "{missing}"
        );
        let args = DaemonArgs {
            fight_threshold: 3,
            events_addr: Some("127.0.0.1:0".into()),
            events_token_file: Some(good),
            ..DaemonArgs::default()
        };
        let mut problems = Vec::new();
        let s = args.validate(false, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let receiver = s.events.receiver.expect("a receiver");
        assert_eq!(receiver.token.expose(), "abc123-0123456789abcdef");
        assert!(
            !format!("{receiver:?}").contains("abc123-0123456789abcdef"),
            "the token never reaches Debug"
        );
    }
}
