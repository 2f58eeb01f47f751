//! Validation of the scale flags (`--max-rps`, `--max-rps-action`, `--pass-timeout`, request and
//! connect timeouts), kept apart from `cli` so that file only gains a few lines.

use super::connect::ConnectArgs;
use super::duration;
use crate::ecs::limit::{parse_rps, RateLimits};
use std::time::Duration;

/// The validated scale settings; placeholders where a problem was recorded.
pub struct Scale {
    pub rate_limits: RateLimits,
    pub pass_timeout: Option<Duration>,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

/// Checks the scale flags (`pass_timeout` is `--pass-timeout`'s text), pushing every problem onto
/// `problems`.
pub fn validate(args: &ConnectArgs, pass_timeout: &str, problems: &mut Vec<String>) -> Scale {
    let mut rate_limits = RateLimits::default();
    match parse_rps(&args.max_rps.to_string()) {
        Ok(v) => rate_limits.default_rps = v,
        Err(e) => problems.push(format!("--max-rps {e}")),
    }
    for o in &args.max_rps_action {
        match RateLimits::parse_override(o) {
            Ok((action, rps)) => {
                rate_limits.per_action.insert(action, rps);
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    let mut duration = |flag: &str, text: &str, default: Duration| match duration::parse(text) {
        Ok(d) => d,
        Err(e) => {
            problems.push(format!("{flag} {e}"));
            default
        }
    };
    let pass_timeout = duration("--pass-timeout", pass_timeout, Duration::ZERO);
    let request_timeout = duration(
        "--request-timeout",
        &args.request_timeout,
        Duration::from_secs(15),
    );
    let connect_timeout = duration(
        "--connect-timeout",
        &args.connect_timeout,
        Duration::from_secs(5),
    );
    for (flag, d) in [
        ("--request-timeout", request_timeout),
        ("--connect-timeout", connect_timeout),
    ] {
        if d < Duration::from_millis(10) {
            problems.push(format!("{flag} must be at least 10ms"));
        }
    }
    Scale {
        rate_limits,
        pass_timeout: (!pass_timeout.is_zero()).then_some(pass_timeout),
        request_timeout,
        connect_timeout,
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::Cli;
    use clap::Parser;
    use std::time::Duration;

    fn validate(args: &[&str]) -> Result<crate::cli::Config, Vec<String>> {
        let base = ["sgpolicy", "--policies", "p", "--once"];
        Cli::try_parse_from(base.iter().chain(args.iter()).copied())
            .expect("parses")
            .run
            .validate()
    }

    #[test]
    fn scale_flags_become_rate_limits_and_timeouts() {
        let c = validate(&[
            "--max-rps",
            "50",
            "--max-rps-action",
            "ModifySecurityGroupPolicy=5",
            "--pass-timeout",
            "2m",
            "--request-timeout",
            "3s",
            "--connect-timeout",
            "500ms",
        ])
        .expect("valid");
        assert_eq!(
            c.connect.rate_limits.ceiling("DescribeSecurityGroups"),
            50.0
        );
        assert_eq!(
            c.connect.rate_limits.ceiling("ModifySecurityGroupPolicy"),
            5.0
        );
        assert_eq!(c.pass.pass_timeout, Some(Duration::from_secs(120)));
        assert_eq!(c.connect.request_timeout, Duration::from_secs(3));
        assert_eq!(c.connect.connect_timeout, Duration::from_millis(500));
        let defaults = validate(&[]).expect("valid");
        assert_eq!(defaults.pass.pass_timeout, Some(Duration::from_secs(1800)));
        assert_eq!(
            validate(&["--pass-timeout", "0"])
                .expect("valid")
                .pass
                .pass_timeout,
            None
        );
    }

    #[test]
    fn every_bad_scale_flag_is_reported() {
        let problems = validate(&[
            "--max-rps",
            "0",
            "--max-rps-action",
            "Modify",
            "--pass-timeout",
            "soon",
            "--request-timeout",
            "1ms",
        ])
        .unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:#?}");
    }
}
