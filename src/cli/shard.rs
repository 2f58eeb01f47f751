//! The shard flags (raw, as clap parses them) and their validation into a [`Shard`]:
//! `--shard-index I --shard-count N`, or `--shard-from-hostname --shard-count N`, which takes the index
//! from a StatefulSet pod's hostname (`sgpolicy-3` → 3). Reading the hostname is the only I/O here
//! (the `HOSTNAME` variable, else `/proc/sys/kernel/hostname`), and only with `--shard-from-hostname`.

use crate::shard::{ordinal_of, Shard};
use clap::Args;

#[derive(Args, Debug, Default, Clone)]
#[command(next_help_heading = "Sharding (a StatefulSet of replicas dividing the buckets)")]
pub struct ShardArgs {
    /// This replica's shard, 0 to --shard-count minus 1 [default: the only shard].
    #[arg(long, value_name = "I")]
    pub shard_index: Option<u32>,
    /// Number of shards the (account, region) buckets are divided between.
    #[arg(long, value_name = "N")]
    pub shard_count: Option<u32>,
    /// Take the shard index from the ordinal ending the hostname (StatefulSet pod sgpolicy-3 → 3).
    #[arg(long, conflicts_with = "shard_index")]
    pub shard_from_hostname: bool,
}

/// The machine's hostname: `HOSTNAME` (Kubernetes sets it to the pod name), else the kernel's.
pub fn system_hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
}

impl ShardArgs {
    /// The shard, or the problems (added to the other argument problems: exit 64). `hostname` is
    /// asked only with `--shard-from-hostname`.
    pub fn validate(
        &self,
        hostname: impl FnOnce() -> Option<String>,
        problems: &mut Vec<String>,
    ) -> Shard {
        let index = match (self.shard_index, self.shard_from_hostname) {
            (Some(i), _) => Some(i),
            (None, false) => None,
            (None, true) => match hostname() {
                None => {
                    problems.push(
                        "--shard-from-hostname: the hostname cannot be read (neither HOSTNAME nor /proc/sys/kernel/hostname)"
                            .to_string(),
                    );
                    return Shard::SOLE;
                }
                Some(h) => match ordinal_of(&h) {
                    Ok(i) => Some(i),
                    Err(e) => {
                        problems.push(format!("--shard-from-hostname: {e}"));
                        return Shard::SOLE;
                    }
                },
            },
        };
        match (index, self.shard_count) {
            (None, None) => Shard::SOLE,
            (Some(_), None) => {
                let what = if self.shard_from_hostname {
                    "--shard-from-hostname"
                } else {
                    "--shard-index"
                };
                problems.push(format!(
                    "{what} needs --shard-count N (the number of replicas)"
                ));
                Shard::SOLE
            }
            (None, Some(_)) => {
                problems.push(
                    "--shard-count needs --shard-index I or --shard-from-hostname".to_string(),
                );
                Shard::SOLE
            }
            (Some(i), Some(n)) => match Shard::new(i, n) {
                Ok(s) => s,
                Err(e) => {
                    let from = if self.shard_from_hostname {
                        " (the ordinal of the hostname)"
                    } else {
                        ""
                    };
                    problems.push(format!("{e}{from}"));
                    Shard::SOLE
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        shard: ShardArgs,
    }

    fn validate(args: &[&str], hostname: Option<&str>) -> Result<Shard, Vec<String>> {
        let cmd = Cmd::try_parse_from(std::iter::once("sgpolicy").chain(args.iter().copied()))
            .map_err(|e| vec![e.to_string()])?;
        let mut problems = Vec::new();
        let asked = std::cell::Cell::new(false);
        let shard = cmd.shard.validate(
            || {
                asked.set(true);
                hostname.map(str::to_string)
            },
            &mut problems,
        );
        assert_eq!(
            asked.get(),
            args.contains(&"--shard-from-hostname"),
            "the hostname is read only for --shard-from-hostname"
        );
        if problems.is_empty() {
            Ok(shard)
        } else {
            Err(problems)
        }
    }

    #[test]
    fn without_flags_a_replica_is_the_only_shard() {
        assert_eq!(validate(&[], Some("sgpolicy-3")), Ok(Shard::SOLE));
    }

    #[test]
    fn an_index_and_a_count_make_a_shard() {
        assert_eq!(
            validate(&["--shard-index", "2", "--shard-count", "3"], None),
            Ok(Shard::new(2, 3).unwrap())
        );
    }

    #[test]
    fn the_index_comes_from_the_statefulset_hostname() {
        assert_eq!(
            validate(
                &["--shard-from-hostname", "--shard-count", "4"],
                Some("sgpolicy-3")
            ),
            Ok(Shard::new(3, 4).unwrap())
        );
    }

    #[test]
    fn a_hostname_without_an_ordinal_or_beyond_the_count_is_a_usage_error() {
        let e = validate(
            &["--shard-from-hostname", "--shard-count", "4"],
            Some("worker"),
        )
        .unwrap_err();
        assert_eq!(
            e,
            ["--shard-from-hostname: hostname \"worker\" does not end in a StatefulSet ordinal like sgpolicy-3"]
        );
        let e = validate(
            &["--shard-from-hostname", "--shard-count", "3"],
            Some("sgpolicy-3"),
        )
        .unwrap_err();
        assert_eq!(
            e,
            ["shard index 3 is not below --shard-count 3 (indexes run from 0 to 2) (the ordinal of the hostname)"]
        );
        let e = validate(&["--shard-from-hostname", "--shard-count", "3"], None).unwrap_err();
        assert!(e[0].contains("cannot be read"), "{e:?}");
    }

    #[test]
    fn half_a_shard_is_a_usage_error() {
        for args in [
            &["--shard-index", "1"][..],
            &["--shard-count", "3"][..],
            &["--shard-from-hostname"][..],
            &["--shard-index", "0", "--shard-count", "0"][..],
        ] {
            let e = validate(args, Some("sgpolicy-1")).unwrap_err();
            assert_eq!(e.len(), 1, "{args:?}: {e:?}");
        }
        let e = validate(
            &[
                "--shard-index",
                "1",
                "--shard-from-hostname",
                "--shard-count",
                "3",
            ],
            None,
        )
        .unwrap_err();
        assert!(e[0].contains("cannot be used with"), "{e:?}");
    }
}
