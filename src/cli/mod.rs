//! The command-line layer: arguments (raw, as clap parses them) and their validation into a [`Config`]
//! of plain settings that flow down (`ConnectSettings` to `accounts`, `PassOptions` to `reconcile`,
//! `DaemonSettings` to `daemon`), with every argument problem reported at once before anything
//! touches the network. Nothing below this layer imports it.

use crate::accounts::connect::ConnectSettings;
use crate::daemon::settings::DaemonSettings;
use crate::ecs::endpoint::EndpointType;
use crate::policy::LoadOptions;
use crate::reconcile::gate::Rails;
use crate::reconcile::PassOptions;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

pub mod connect;
pub mod daemon;
pub mod duration;
pub mod import;
pub mod notify;
pub mod scale;
pub mod shard;
pub mod status;
pub mod validate;

/// Exit statuses scripts can rely on.
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    /// `--dry-run --detailed-exitcode`: the plan has changes.
    pub const DRIFT: i32 = 2;
    /// Invalid command line or configuration (BSD `EX_USAGE`).
    pub const USAGE: i32 = 64;
}

#[derive(Parser, Debug)]
#[command(
    name = "sgpolicy",
    version,
    about = "Keeps the InnerAccessPolicy of Alibaba Cloud ECS security groups equal to what Git declares",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the built-in ECS simulator (an RPC endpoint the official SDKs can use).
    Sim(SimArgs),
    /// Check a policy folder offline (no credentials, no network): exit 0 valid, 1 invalid.
    Validate(ValidateArgs),
    /// Print the JSON Schema of the policy file format.
    Schema,
    /// Write policy files from the live state of existing security groups (adoption).
    Import(Box<import::ImportArgs>),
    /// Show a running daemon's status page (/status.json) in the terminal.
    Status(status::StatusArgs),
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// Folder of policy files (default: the current folder).
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// `text`: path:line:col: message. `github`: GitHub Actions ::error annotations.
    #[arg(long, value_enum, default_value = "text")]
    pub output: ValidateFormat,
    /// Default region for groups whose file and entry name none (as in a pass).
    #[arg(long)]
    pub region: Option<String>,
    /// Largest policy file accepted, in bytes.
    #[arg(long, default_value_t = 1024 * 1024, hide = true)]
    pub max_file_bytes: u64,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ValidateFormat {
    Text,
    Github,
}

#[derive(Args, Debug)]
pub struct SimArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Seed YAML: access keys and security groups.
    #[arg(long)]
    pub seed: PathBuf,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Readable lines for people.
    Human,
    /// One JSON object per line, for log pipelines.
    Json,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    /// A compact plan for a pull-request comment (under GitHub's 65,536-character limit).
    Markdown,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Folder of policy files (*.yaml, *.yml), read recursively.
    #[arg(long, value_name = "DIR")]
    pub policies: Option<PathBuf>,
    /// Run one pass and exit (the daemon mode runs without it).
    #[arg(long)]
    pub once: bool,
    /// Plan only: read the cloud, print what would change, never write.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: exit 0 when in sync, 2 when there is drift, 1 on any error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Output format for the plan or result on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    /// Default region for groups whose file and entry name none.
    #[arg(long)]
    pub region: Option<String>,
    #[command(flatten)]
    pub connect: connect::ConnectArgs,
    /// Largest policy file accepted, in bytes.
    #[arg(long, default_value_t = 1024 * 1024, hide = true)]
    pub max_file_bytes: u64,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "human")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub daemon: daemon::DaemonArgs,
    #[command(flatten)]
    pub shard: shard::ShardArgs,
    /// Also write the JSON result to FILE (CI wrappers often lose stdout and exit codes).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// A pass planning more than N changes writes none of them and exits 1.
    #[arg(long, value_name = "N", default_value_t = crate::reconcile::gate::DEFAULT_MAX_CHANGES)]
    pub max_changes: usize,
    /// Apply changes that open a group (Drop -> Accept); without it they are held and the pass exits 1.
    #[arg(long)]
    pub allow_open: bool,
    /// With --once: also list the groups of every (account, region) the folder names that no entry
    /// or selector governs (one paged DescribeSecurityGroups listing per account and region). The
    /// daemon always does, after each full pass, and exports sgpolicy_ungoverned_groups.
    #[arg(long)]
    pub report_ungoverned: bool,
    /// Daemon: skip the coverage listing after full passes (for a small folder in a large account,
    /// where the listing costs more calls than the pass).
    #[arg(long, conflicts_with = "report_ungoverned")]
    pub no_report_ungoverned: bool,
    /// With --once: like --report-ungoverned, and an ungoverned group (or a failed listing) is an
    /// error (exit 1).
    #[arg(long)]
    pub fail_on_ungoverned: bool,
    /// With --once: check that every group declared Drop really isolates its members (its rules, its
    /// members' other groups and shared Accept groups; docs/isolation.md). Reads every rule, each
    /// VPC's network interfaces and the prefix lists the rules name.
    #[arg(long)]
    pub check_isolation: bool,
    /// With --once: like --check-isolation, and a group declared Drop that is not proven isolated
    /// (not isolated, or unknown) is an error (exit 1, also with --detailed-exitcode).
    #[arg(long)]
    pub require_isolation: bool,
    /// Daemon: skip the isolation check (after full and file passes, and the re-checks that
    /// ActionTrail events of rule, membership and interface changes trigger).
    #[arg(long, conflicts_with_all = ["check_isolation", "require_isolation"])]
    pub no_check_isolation: bool,
    /// Deadline for a whole pass (e.g. 30m, 90s; 0 for none); unfinished groups are reported as errors.
    #[arg(long, value_name = "DURATION", default_value = "30m")]
    pub pass_timeout: String,
}

/// `--endpoint-type`, as the command line spells it (the `ecs` layer knows nothing of clap).
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum EndpointTypeArg {
    Public,
    Vpc,
}

impl From<EndpointTypeArg> for EndpointType {
    fn from(a: EndpointTypeArg) -> EndpointType {
        match a {
            EndpointTypeArg::Public => EndpointType::Public,
            EndpointTypeArg::Vpc => EndpointType::Vpc,
        }
    }
}

/// A validated command line: what to read, how to reach the cloud, how to run a pass, and which mode.
#[derive(Debug, Clone)]
pub struct Config {
    pub policies: PathBuf,
    pub load: LoadOptions,
    pub connect: ConnectSettings,
    /// The options of every pass (the daemon adds its cancellation flag).
    pub pass: PassOptions,
    pub mode: RunMode,
    pub output: OutputFormat,
    pub report: Option<PathBuf>,
    /// The buckets this replica owns (`--shard-*`; the only shard without them).
    pub shard: crate::shard::Shard,
    /// `--report-ungoverned` (or `--fail-on-ungoverned`): survey coverage after the pass.
    pub report_ungoverned: bool,
    /// `--fail-on-ungoverned`: an ungoverned group is an error for the exit code.
    pub fail_on_ungoverned: bool,
    /// `--require-isolation`: a group declared Drop not proven isolated is an error for the exit code
    /// (the check itself is `pass.check_isolation`).
    pub require_isolation: bool,
}

/// How sgpolicy runs: chosen by `--once`, `--dry-run` and `--detailed-exitcode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMode {
    /// `--once`: one pass that writes, then exit 0 (all in sync or fixed) or 1 (errors).
    Apply,
    /// `--once --dry-run`: read and plan, never write.
    Plan(PlanExit),
    /// Without `--once`: the long-running daemon (with `--dry-run` it monitors and never writes).
    Daemon(Box<DaemonSettings>),
}

/// What a `--once --dry-run` exit status says about drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanExit {
    /// 0 whether or not the plan has changes (1 on errors).
    Plain,
    /// `--detailed-exitcode`: 0 in sync, 2 drift, 1 errors.
    Detailed,
}

impl RunArgs {
    /// Every problem with the arguments, not just the first.
    pub fn validate(&self) -> Result<Config, Vec<String>> {
        self.validate_with(shard::system_hostname)
    }

    /// [`RunArgs::validate`], reading the hostname (only for `--shard-from-hostname`) from `hostname`.
    pub fn validate_with(
        &self,
        hostname: impl FnOnce() -> Option<String>,
    ) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();
        if self.policies.is_none() {
            problems
                .push("--policies DIR is required (the folder of policy YAML files)".to_string());
        }
        let mut daemon = self.daemon.validate(self.once, &mut problems);
        // The daemon surveys coverage unless told not to; a one-shot run only when asked.
        daemon.report_ungoverned = !self.no_report_ungoverned;
        self.combination_problems(&mut problems);
        let (connect, pass_timeout) = self.connect.validate(&self.pass_timeout, &mut problems);
        let shard = self.shard.validate(hostname, &mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        let mode = match (self.once, self.dry_run, self.detailed_exitcode) {
            (false, _, _) => RunMode::Daemon(Box::new(daemon)),
            (true, false, _) => RunMode::Apply,
            (true, true, false) => RunMode::Plan(PlanExit::Plain),
            (true, true, true) => RunMode::Plan(PlanExit::Detailed),
        };
        Ok(Config {
            policies: self.policies.clone().unwrap_or_default(),
            load: LoadOptions {
                default_region: self.region.clone(),
                max_file_bytes: self.max_file_bytes,
            },
            connect,
            pass: PassOptions {
                dry_run: self.dry_run,
                concurrency: self.connect.concurrency,
                rails: Rails {
                    max_changes: Some(self.max_changes),
                    allow_open: self.allow_open,
                },
                pass_timeout,
                // The daemon checks after every full pass unless told not to; a one-shot run
                // only when asked.
                check_isolation: if self.once {
                    self.check_isolation || self.require_isolation
                } else {
                    !self.no_check_isolation
                },
                ..PassOptions::default()
            },
            mode,
            output: self.output,
            report: self.report.clone(),
            shard,
            report_ungoverned: self.report_ungoverned || self.fail_on_ungoverned,
            fail_on_ungoverned: self.fail_on_ungoverned,
            require_isolation: self.require_isolation,
        })
    }

    /// Flags that do not go together (or with this mode), and a malformed `--region`.
    fn combination_problems(&self, problems: &mut Vec<String>) {
        if self.no_report_ungoverned && self.once {
            problems.push(
            "--no-report-ungoverned only applies to the daemon (a --once run surveys only with --report-ungoverned)"
                .to_string(),
        );
        }
        if self.fail_on_ungoverned && !self.once {
            problems.push(
            "--fail-on-ungoverned only applies with --once (a daemon has no final exit code; alert on sgpolicy_ungoverned_groups)"
                .to_string(),
        );
        }
        if self.require_isolation && !self.once {
            problems.push(
                "--require-isolation only applies with --once (a daemon has no final exit code)"
                    .to_string(),
            );
        }
        if self.no_check_isolation && self.once {
            problems.push(
                "--no-check-isolation only applies to the daemon (a --once run checks only with --check-isolation)"
                    .to_string(),
            );
        }
        if self.detailed_exitcode && !self.once {
            problems.push(
                "--detailed-exitcode only applies with --once (a daemon has no final exit code)"
                    .to_string(),
            );
        }
        if self.detailed_exitcode && !self.dry_run {
            problems.push("--detailed-exitcode only makes sense with --dry-run".to_string());
        }
        if let Some(r) = &self.region {
            if r.is_empty()
                || !r
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                problems.push(format!(
                    "--region {r:?} is not a region id like cn-hangzhou"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("sgpolicy").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn all_argument_problems_are_reported_together() {
        let cli = parse(&[
            "--detailed-exitcode",
            "--endpoint",
            "http://192.0.2.1",
            "--concurrency",
            "0",
            "--interval",
            "x",
        ]);
        let problems = cli.run.validate().unwrap_err();
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("--policies")));
        assert!(problems.iter().any(|p| p.contains("--insecure-http")));
    }

    #[test]
    fn a_valid_one_shot_dry_run() {
        let cli = parse(&[
            "--policies",
            "p",
            "--once",
            "--dry-run",
            "--detailed-exitcode",
            "--output",
            "json",
        ]);
        let c = cli.run.validate().unwrap();
        assert!(c.pass.dry_run);
        assert_eq!(c.mode, RunMode::Plan(PlanExit::Detailed));
        assert_eq!(c.output, OutputFormat::Json);
    }

    #[test]
    fn without_once_it_is_a_daemon() {
        let cli = parse(&[
            "--policies",
            "p",
            "--interval",
            "30s",
            "--metrics-addr",
            ":9090",
        ]);
        let c = cli.run.validate().unwrap();
        let RunMode::Daemon(daemon) = c.mode else {
            panic!("a daemon: {:?}", c.mode)
        };
        assert_eq!(daemon.interval, std::time::Duration::from_secs(30));
        assert_eq!(daemon.metrics_addr.map(|a| a.port()), Some(9090));
    }

    #[test]
    fn the_actiontrail_endpoint_follows_the_endpoint_rule() {
        let problems = parse(&[
            "--policies",
            "p",
            "--actiontrail-endpoint",
            "http://192.0.2.1",
        ])
        .run
        .validate()
        .unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("--actiontrail-endpoint:") && p.contains("--insecure-http")),
            "{problems:#?}"
        );
        let c = parse(&[
            "--policies",
            "p",
            "--actiontrail-endpoint",
            "http://127.0.0.1:9000",
        ])
        .run
        .validate()
        .unwrap();
        assert_eq!(
            c.connect.actiontrail_endpoint.as_deref(),
            Some("http://127.0.0.1:9000")
        );
    }

    #[test]
    fn the_isolation_flags_check_one_shot_passes_and_require_isolation_implies_the_check() {
        let plain = parse(&["--policies", "p", "--once"])
            .run
            .validate()
            .unwrap();
        assert!(
            !plain.pass.check_isolation,
            "the check costs calls: only when asked"
        );
        let check = parse(&["--policies", "p", "--once", "--check-isolation"])
            .run
            .validate()
            .unwrap();
        assert!(check.pass.check_isolation && !check.require_isolation);
        let strict = parse(&[
            "--policies",
            "p",
            "--once",
            "--dry-run",
            "--detailed-exitcode",
            "--require-isolation",
        ])
        .run
        .validate()
        .unwrap();
        assert!(strict.pass.check_isolation && strict.require_isolation);
        let problems = parse(&["--policies", "p", "--require-isolation"])
            .run
            .validate()
            .unwrap_err();
        assert!(
            problems[0].starts_with("--require-isolation only applies with --once"),
            "{problems:?}"
        );
        let problems = parse(&["--policies", "p", "--once", "--no-check-isolation"])
            .run
            .validate()
            .unwrap_err();
        assert!(
            problems[0].starts_with("--no-check-isolation only applies to the daemon"),
            "{problems:?}"
        );
        let daemon = parse(&["--policies", "p", "--no-check-isolation"])
            .run
            .validate()
            .unwrap();
        assert!(!daemon.pass.check_isolation);
        let daemon = parse(&["--policies", "p"]).run.validate().unwrap();
        assert!(daemon.pass.check_isolation, "the daemon checks by default");
        assert!(Cli::try_parse_from([
            "sgpolicy",
            "--policies",
            "p",
            "--no-check-isolation",
            "--check-isolation"
        ])
        .is_err());
    }

    #[test]
    fn the_coverage_flags_survey_after_one_shot_passes_and_full_daemon_passes() {
        let strict = parse(&["--policies", "p", "--once", "--fail-on-ungoverned"])
            .run
            .validate()
            .unwrap();
        assert!(strict.report_ungoverned && strict.fail_on_ungoverned);
        let daemon = parse(&["--policies", "p"]).run.validate().unwrap();
        let RunMode::Daemon(settings) = daemon.mode else {
            panic!("a daemon: {:?}", daemon.mode)
        };
        assert!(settings.report_ungoverned, "the daemon surveys by default");
        let quiet = parse(&["--policies", "p", "--no-report-ungoverned"])
            .run
            .validate()
            .unwrap();
        let RunMode::Daemon(settings) = quiet.mode else {
            panic!("a daemon: {:?}", quiet.mode)
        };
        assert!(!settings.report_ungoverned);
        let once = parse(&["--policies", "p", "--once"])
            .run
            .validate()
            .unwrap();
        assert!(
            !once.report_ungoverned,
            "a one-shot run surveys only when asked"
        );
        let problems = parse(&["--policies", "p", "--fail-on-ungoverned"])
            .run
            .validate()
            .unwrap_err();
        assert!(
            problems[0].starts_with("--fail-on-ungoverned only applies with --once"),
            "{problems:?}"
        );
    }

    #[test]
    fn sim_is_a_subcommand() {
        let cli = parse(&["sim", "--listen", "127.0.0.1:0", "--seed", "s.yaml"]);
        assert!(matches!(cli.command, Some(Command::Sim(ref a)) if a.listen == "127.0.0.1:0"));
    }
}
