//! `sgpolicy status --addr HOST:PORT`: a daemon's status page in the terminal. The flags are checked
//! together (exit 64 with every problem), the password is read from `--auth-file` and never taken on
//! the command line (where `ps` and shell history would keep it).

use crate::daemon::status::fetch::Target;
use crate::daemon::status::table::{Filter, STATES};
use crate::ecs::credentials::Secret;
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    /// The daemon's --status-addr, e.g. 127.0.0.1:8082 (after `kubectl port-forward`), or a URL
    /// such as https://sgpolicy.example.internal when TLS is terminated in front.
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: String,
    /// Only groups in this state: in-sync, drifted, held, failing, unknown.
    #[arg(long)]
    pub state: Option<String>,
    /// Only groups of this account id ("" for the default account).
    #[arg(long)]
    pub account: Option<String>,
    /// Only groups of this region.
    #[arg(long)]
    pub region: Option<String>,
    /// Only groups declared in this policy file (its path as the daemon names it, or its last
    /// components, e.g. prod.yaml or team-a/prod.yaml).
    #[arg(long, value_name = "PATH")]
    pub file: Option<String>,
    /// text: the page's header and table; json: the /status.json document with the groups filtered.
    #[arg(long, value_enum, default_value = "text")]
    pub output: StatusOutput,
    /// File holding `user:password` for a daemon with --status-auth-file.
    #[arg(long, value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatusOutput {
    Text,
    Json,
}

/// A validated `sgpolicy status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusConfig {
    pub target: Target,
    pub filter: Filter,
    pub output: StatusOutput,
}

/// `--addr`: `HOST:PORT` becomes `http://HOST:PORT`; an `http://` or `https://` URL is kept.
fn base(addr: &str) -> Result<String, String> {
    let text = addr.trim();
    let url = match text.contains("://") {
        true => text.to_string(),
        false => format!("http://{text}"),
    };
    let parsed = url::Url::parse(&url)
        .map_err(|e| format!("--addr {addr:?} is not HOST:PORT or an http(s) URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "--addr {addr:?} is not HOST:PORT or an http(s) URL"
        ));
    }
    if !text.contains("://") && parsed.port().is_none() {
        return Err(format!(
            "--addr {addr:?} has no port: give the daemon's --status-addr, e.g. 127.0.0.1:8082"
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// `--auth-file`: one `user:password` line (a trailing newline is dropped; the password may hold
/// `:`). The error never shows the file's content.
pub fn read_credentials(path: &Path) -> Result<(String, Secret), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--auth-file {}: {e}", path.display()))?;
    let line = text.trim_end_matches(['\n', '\r']);
    match line.split_once(':') {
        Some((user, password)) if !user.is_empty() && !line.contains('\n') => {
            Ok((user.to_string(), Secret::new(password)))
        }
        _ => Err(format!(
            "--auth-file {}:1: expected one line user:password",
            path.display()
        )),
    }
}

/// A warning when credentials would cross a network in clear text (plain `http://` to an address
/// that is not loopback): basic authentication is only as private as its transport.
pub fn clear_text_warning(c: &StatusConfig) -> Option<String> {
    c.target.credentials.as_ref()?;
    let url = url::Url::parse(&c.target.base).ok()?;
    let loopback = match url.host()? {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(d) => d == "localhost",
    };
    (url.scheme() == "http" && !loopback).then(|| {
        format!(
            "sending the --auth-file credentials to {} without TLS; use https:// with TLS terminated in front, or kubectl port-forward (docs/status.md)",
            c.target.base
        )
    })
}

impl StatusArgs {
    /// Every problem at once.
    pub fn validate(&self) -> Result<StatusConfig, Vec<String>> {
        let mut problems = Vec::new();
        let base = base(&self.addr).map_err(|e| problems.push(e)).ok();
        if let Some(s) = &self.state {
            if !STATES.contains(&s.as_str()) {
                problems.push(format!(
                    "--state {} is not one of {}",
                    crate::escape::quoted(s),
                    STATES.join(", ")
                ));
            }
        }
        let credentials = match &self.auth_file {
            None => None,
            Some(path) => read_credentials(path).map_err(|e| problems.push(e)).ok(),
        };
        match (base, problems.is_empty()) {
            (Some(base), true) => Ok(StatusConfig {
                target: Target { base, credentials },
                filter: Filter {
                    state: self.state.clone(),
                    account: self.account.clone(),
                    region: self.region.clone(),
                    file: self.file.clone(),
                },
                output: self.output,
            }),
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(addr: &str) -> StatusArgs {
        StatusArgs {
            addr: addr.into(),
            state: None,
            account: None,
            region: None,
            file: None,
            output: StatusOutput::Text,
            auth_file: None,
        }
    }

    #[test]
    fn an_address_becomes_a_base_url_and_a_bad_one_or_state_is_a_usage_problem() {
        let base = |a: &str| args(a).validate().map(|c| c.target.base);
        assert_eq!(base("127.0.0.1:8082"), Ok("http://127.0.0.1:8082".into()));
        assert_eq!(base("[::1]:8082"), Ok("http://[::1]:8082".into()));
        assert_eq!(
            base("https://sgpolicy.example.internal/"),
            Ok("https://sgpolicy.example.internal".into())
        );
        for bad in ["127.0.0.1", "ftp://x:1", "not a host:1:2", ""] {
            assert!(base(bad).is_err(), "{bad}");
        }
        let problems = StatusArgs {
            state: Some("sideways".into()),
            ..args("nowhere")
        }
        .validate()
        .unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[1].contains("--state \"sideways\" is not one of in-sync, drifted"));
    }

    #[test]
    fn the_auth_file_holds_user_colon_password_and_a_bad_one_never_shows_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("auth");
        std::fs::write(&good, "alice:correct horse:battery\n").unwrap();
        let (user, password) = read_credentials(&good).unwrap();
        assert_eq!(
            (user.as_str(), password.expose()),
            ("alice", "correct horse:battery")
        );
        for bad in ["just-a-password\n", ":nouser\n", "a:b\nc:d\n"] {
            std::fs::write(&good, bad).unwrap();
            let e = read_credentials(&good).unwrap_err();
            assert!(e.ends_with(":1: expected one line user:password"), "{e}");
            assert!(!e.contains("password\n") && !e.contains("nouser"), "{e}");
        }
    }
}
