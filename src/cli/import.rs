//! `sgpolicy import` flags and their validation into [`ImportSettings`] and the connection settings,
//! every problem reported at once (exit 64) before any request.

use super::connect::ConnectArgs;
use crate::accounts::connect::ConnectSettings;
use crate::ecs::GroupFilter;
use crate::import::ImportSettings;
use crate::model::{AccountRef, Mode};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// DescribeSecurityGroups accepts `Tag.1` to `Tag.20`, keys and values of at most 128 characters.
const MAX_TAGS: usize = 20;
const MAX_TAG_LEN: usize = 128;

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Region to import, e.g. cn-hangzhou (repeatable: --region cn-hangzhou --region cn-shanghai).
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
    /// Folder to write the policy files to (created if missing); existing files are never
    /// overwritten without --force.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Only groups in this VPC.
    #[arg(long, value_name = "VPC")]
    pub vpc_id: Option<String>,
    /// Only groups carrying this tag (repeatable; all must match).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// Only groups whose name starts with this.
    #[arg(long, value_name = "PREFIX")]
    pub name_prefix: Option<String>,
    /// Import another account through this RAM role (written as the files' `account:`).
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,
    /// The ExternalId the role's trust policy requires.
    #[arg(long, value_name = "ID")]
    pub external_id: Option<String>,
    /// observe: every entry gets `mode: observe` (planned and reported, never written), the safe
    /// first step of a roll-out; enforce: entries are enforced once merged.
    #[arg(long, value_enum, default_value = "observe")]
    pub mode: ModeArg,
    /// Overwrite policy files that already exist in --out.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `--mode`, as the command line spells it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Enforce,
    Observe,
}

/// A validated `sgpolicy import` command line.
#[derive(Debug, Clone)]
pub struct ImportConfig {
    pub settings: ImportSettings,
    pub connect: ConnectSettings,
}

fn region_problem(r: &str) -> Option<String> {
    let fine = !r.is_empty()
        && r.len() <= 64
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    (!fine).then(|| format!("--region {r:?} is not a region id like cn-hangzhou"))
}

impl ImportArgs {
    /// Every problem with the arguments, not just the first.
    pub fn validate(&self) -> Result<ImportConfig, Vec<String>> {
        let mut problems = Vec::new();
        if self.regions.is_empty() {
            problems.push(
                "--region REGION is required (repeat it to import several regions)".to_string(),
            );
        }
        problems.extend(self.regions.iter().filter_map(|r| region_problem(r)));
        if self.out.is_none() {
            problems.push("--out DIR is required (the folder to write the policy files to)".into());
        }
        if self.vpc_id.as_deref() == Some("") {
            problems.push("--vpc-id must not be empty".into());
        }
        if self.name_prefix.as_deref() == Some("") {
            problems.push("--name-prefix must not be empty".into());
        }
        let tags = self.tag_filters(&mut problems);
        let account = self.account(&mut problems);
        let (connect, _) = self.connect.validate("0", &mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut regions: Vec<String> = Vec::new();
        for r in &self.regions {
            if !regions.contains(r) {
                regions.push(r.clone());
            }
        }
        Ok(ImportConfig {
            settings: ImportSettings {
                regions,
                filter: GroupFilter {
                    vpc_id: self.vpc_id.clone(),
                    tags,
                },
                name_prefix: self.name_prefix.clone(),
                account,
                mode: match self.mode {
                    ModeArg::Enforce => Mode::Enforce,
                    ModeArg::Observe => Mode::Observe,
                },
                concurrency: self.connect.concurrency,
                out: self.out.clone().unwrap_or_default(),
                force: self.force,
            },
            connect,
        })
    }

    /// `--tag KEY=VALUE` filters, each within ECS's limits.
    fn tag_filters(&self, problems: &mut Vec<String>) -> Vec<(String, String)> {
        let mut tags = Vec::new();
        for t in &self.tags {
            match t.split_once('=') {
                Some((k, v)) if !k.is_empty() && k.len() <= MAX_TAG_LEN && v.len() <= MAX_TAG_LEN => {
                    tags.push((k.to_string(), v.to_string()))
                }
                _ => problems.push(format!(
                    "--tag {t:?} is not KEY=VALUE (a key of 1 to {MAX_TAG_LEN} characters, a value of at most {MAX_TAG_LEN})"
                )),
            }
        }
        if tags.len() > MAX_TAGS {
            problems.push(format!(
                "at most {MAX_TAGS} --tag filters, got {}",
                tags.len()
            ));
        }
        tags
    }

    /// The account imported from: `--role-arn` (with `--external-id`), or the chain's own.
    fn account(&self, problems: &mut Vec<String>) -> Option<AccountRef> {
        match (&self.role_arn, &self.external_id) {
            (Some(arn), external_id) => match AccountRef::new(arn, external_id.as_deref()) {
                Ok(a) => Some(a),
                Err(e) => {
                    problems.push(format!("--role-arn: {e}"));
                    None
                }
            },
            (None, Some(_)) => {
                problems.push("--external-id goes with --role-arn".into());
                None
            }
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use crate::model::Mode;
    use clap::Parser;

    fn validate(args: &[&str]) -> Result<super::ImportConfig, Vec<String>> {
        let cli = Cli::try_parse_from(["sgpolicy", "import"].iter().chain(args).copied())
            .expect("parses");
        match cli.command {
            Some(Command::Import(a)) => a.validate(),
            other => panic!("not an import: {other:?}"),
        }
    }

    #[test]
    fn an_import_names_its_regions_filters_account_and_mode() {
        let c = validate(&[
            "--region",
            "cn-hangzhou",
            "--region",
            "cn-shanghai",
            "--region",
            "cn-hangzhou",
            "--out",
            "policies",
            "--vpc-id",
            "vpc-1",
            "--tag",
            "env=prod",
            "--tag",
            "team=a=b",
            "--name-prefix",
            "web-",
            "--role-arn",
            "acs:ram::2222222222222222:role/sgpolicy",
            "--external-id",
            "x",
            "--mode",
            "enforce",
            "--force",
            "--max-rps",
            "5",
        ])
        .expect("valid");
        let s = &c.settings;
        assert_eq!(
            s.regions,
            ["cn-hangzhou", "cn-shanghai"],
            "each region once"
        );
        assert_eq!(s.filter.vpc_id.as_deref(), Some("vpc-1"));
        assert_eq!(
            s.filter.tags,
            [
                ("env".to_string(), "prod".to_string()),
                ("team".to_string(), "a=b".to_string())
            ]
        );
        assert_eq!(s.name_prefix.as_deref(), Some("web-"));
        let account = s.account.as_ref().expect("role");
        assert_eq!(account.account_id(), Ok("2222222222222222"));
        assert_eq!(account.external_id.as_deref(), Some("x"));
        assert_eq!(s.mode, Mode::Enforce);
        assert!(s.force);
        assert_eq!(
            c.connect
                .rate_limits
                .ceiling("DescribeSecurityGroupAttribute"),
            5.0
        );
        let default = validate(&["--region", "cn-hangzhou", "--out", "p"]).expect("valid");
        assert_eq!(
            default.settings.mode,
            Mode::Observe,
            "observe-only unless asked"
        );
        assert!(!default.settings.force);
    }

    #[test]
    fn every_bad_import_argument_is_reported_together() {
        let problems = validate(&[
            "--region",
            "CN_HANGZHOU",
            "--tag",
            "novalue",
            "--tag",
            "=v",
            "--external-id",
            "x",
            "--role-arn",
            "arn:nope",
            "--concurrency",
            "0",
        ])
        .unwrap_err();
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("--out DIR is required")));
        let problems = validate(&["--external-id", "x", "--out", "p"]).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("--region REGION is required")),
            "{problems:?}"
        );
        assert!(problems
            .iter()
            .any(|p| p.contains("--external-id goes with --role-arn")));
    }
}
